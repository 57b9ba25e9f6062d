// Package browser drives headless Chromium over the Chrome DevTools
// Protocol for the demo client's tests: ws-edge's own demo test and the
// e2e chat test share it.
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Browser drives headless Chromium over the Chrome DevTools Protocol: just
// enough of it for the demo client tests (isolated browser contexts, pages,
// Runtime.evaluate, screenshots), spoken over the WebSocket library the
// edge already uses. A context is one person's browser (its own
// localStorage); pages in one context are that person's windows.
type Browser struct {
	conn    *websocket.Conn
	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan cdpReply
}

// Page is one window (a CDP target) of the browser.
type Page struct {
	b       *Browser
	Name    string
	session string
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// ChromiumPath finds Chromium ($CHROMIUM first); its absence fails the test:
// the demo client is part of what Courier ships (`make test` installs it,
// scripts/ensure-tool.sh chromium).
func ChromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("chromium is not installed: the demo client's browser tests need it; `make test` installs it (scripts/ensure-tool.sh chromium, or apt-get install -y chromium)")
	return ""
}

// Start starts headless Chromium for the test; it is killed (with
// its helper processes) when the test ends, and its log printed if the
// test failed.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := ChromiumPath(t)
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		// Background windows keep their timers: each window here is "in front".
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--remote-debugging-port=0", "about:blank")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				var keep []string
				for _, l := range strings.Split(string(b), "\n") {
					if !strings.Contains(l, "dbus") { // headless without a session bus: noise
						keep = append(keep, l)
					}
				}
				s := strings.Join(keep, "\n")
				if len(s) > 3000 {
					s = s[len(s)-3000:]
				}
				t.Logf("chromium log (tail):\n%s", s)
			}
		}
	})
	var port, wsPath string
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "profile", "DevToolsActivePort"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err == nil && len(lines) >= 2 {
			port, wsPath = lines[0], lines[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("chromium did not write DevToolsActivePort within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+port+wsPath, nil)
	if err != nil {
		t.Fatalf("connect to chromium: %v", err)
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { _ = conn.CloseNow() })
	b := &Browser{conn: conn, waiting: map[int64]chan cdpReply{}}
	go b.readLoop()
	return b
}

// NewContext makes an isolated browser context (its own storage): one
// person. It returns the context's id for NewPage.
func (b *Browser) NewContext(t testing.TB) string {
	t.Helper()
	var res struct {
		BrowserContextID string `json:"browserContextId"`
	}
	b.call(t, "", "Target.createBrowserContext", map[string]any{}, &res)
	return res.BrowserContextID
}

// NewPage opens a window in the context (the default one when "").
func (b *Browser) NewPage(t testing.TB, browserContext, name string) *Page {
	t.Helper()
	params := map[string]any{"url": "about:blank"}
	if browserContext != "" {
		params["browserContextId"] = browserContext
	}
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call(t, "", "Target.createTarget", params, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.call(t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	return &Page{b: b, Name: name, session: attached.SessionID}
}

func (b *Browser) readLoop() {
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			return
		}
		var msg struct {
			ID int64 `json:"id"`
			cdpReply
		}
		if json.Unmarshal(data, &msg) != nil || msg.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.waiting[msg.ID]
		delete(b.waiting, msg.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- msg.cdpReply
		}
	}
}

// call sends one CDP command (to a page when session is set) and decodes
// its result into out.
func (b *Browser) call(t testing.TB, session, method string, params, out any) {
	t.Helper()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	req := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		req["sessionId"] = session
	}
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("cdp %s: %v", method, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.conn.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatalf("cdp %s: %v", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			t.Fatalf("cdp %s: %s", method, r.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				t.Fatalf("cdp %s result: %v", method, err)
			}
		}
	case <-ctx.Done():
		t.Fatalf("cdp %s: no answer within 30s", method)
	}
}

// Navigate loads url in the page.
func (p *Page) Navigate(t testing.TB, url string) {
	t.Helper()
	p.b.call(t, p.session, "Page.navigate", map[string]any{"url": url}, nil)
}

// Eval runs a JavaScript expression in the page (awaiting a promise) and
// decodes its JSON-able value into out.
func (p *Page) Eval(t testing.TB, expr string, out any) error {
	t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	p.b.call(t, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if res.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s", res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// Run executes JavaScript statements in the page.
func (p *Page) Run(t testing.TB, js string) {
	t.Helper()
	if err := p.Eval(t, "(() => { "+js+" ; return true; })()", nil); err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
}

// WaitFor polls a boolean expression until it holds; on timeout it fails
// the test with the page's text and its connection log.
func (p *Page) WaitFor(t testing.TB, d time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var ok bool
		err := p.Eval(t, expr, &ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var page string
			_ = p.Eval(t, `document.body.innerText + "\n----- log\n" + (document.getElementById("log")?.textContent ?? "")`, &page)
			t.Fatalf("%s: %s: not within %s (last error: %v); page text:\n%s", p.Name, what, d, err, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Screenshot saves a PNG of the page as DEMO_SCREENSHOT_DIR/name.png when
// that variable is set: a way to look at the demo as a person would.
func (p *Page) Screenshot(t testing.TB, name string) {
	t.Helper()
	dir := os.Getenv("DEMO_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	// A window behind another paints no frames to capture.
	p.b.call(t, p.session, "Page.bringToFront", map[string]any{}, nil)
	var shot struct {
		Data []byte `json:"data"`
	}
	p.b.call(t, p.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), shot.Data, 0o644); err != nil {
		t.Fatal(err)
	}
}
