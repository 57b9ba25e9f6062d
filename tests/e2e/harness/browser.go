package harness

import (
	"testing"

	"github.com/courierhq/courier/pkg/harness/browser"
)

// Browser and Page are pkg/harness/browser's (shared with ws-edge's demo
// client test): headless Chromium over the DevTools Protocol.
type (
	Browser = browser.Browser
	Page    = browser.Page
)

// StartBrowser starts headless Chromium for the test (browser.Start).
func StartBrowser(t testing.TB) *Browser { return browser.Start(t) }
