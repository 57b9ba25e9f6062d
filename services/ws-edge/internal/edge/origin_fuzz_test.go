package edge

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// FuzzCheckOrigin gives the Origin check hostile Origin and Host headers.
// Properties: no panic; an Origin it lets through is absent, has the
// request's own host, or matches an allowed pattern; and it never lets
// through what coder/websocket's Accept then refuses (that refusal would be
// a plain-text 403 instead of the edge's JSON one).
func FuzzCheckOrigin(f *testing.F) {
	for _, s := range [][2]string{
		{"", "edge.local"}, {"http://edge.local:8081", "edge.local:8081"}, {"https://app.example.com", "edge"},
		{"https://eu.courier.test", "edge"}, {"http://eu.courier.test", "edge"}, {"https://app.example.com.evil", "edge"},
		{"null", "edge"}, {"null", ""}, {"https://app.example.com@evil.example", "edge"}, {"https://evil.example#app.example.com", "edge"},
		{"https://APP.EXAMPLE.COM", "edge"}, {"//app.example.com", "edge"}, {"https://[::1]:80", "[::1]:80"}, {"%", "edge"},
	} {
		f.Add(s[0], s[1])
	}
	patterns := []string{"app.example.com", "https://*.courier.test", "localhost:*"}
	f.Fuzz(func(t *testing.T, origin, host string) {
		r := httptest.NewRequest(http.MethodGet, "http://edge.local/v1/ws", nil)
		r.Host = host
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		err := checkOrigin(r, patterns)
		if err != nil {
			return
		}
		if origin != "" {
			u, perr := url.Parse(origin)
			if perr != nil || u.Host == "" {
				t.Fatalf("accepted malformed origin %q", origin)
			}
			ok := strings.EqualFold(u.Host, host)
			for _, p := range patterns {
				target := u.Host
				if strings.Contains(p, "://") {
					target = u.Scheme + "://" + u.Host
				}
				m, _ := path.Match(strings.ToLower(p), strings.ToLower(target))
				ok = ok || m
			}
			if !ok {
				t.Fatalf("accepted origin %q for host %q", origin, host)
			}
		}
		// The library's own check: a request that passes ours must get past
		// its origin check (the recorder cannot be hijacked, so passing
		// means 501, refusing means 403).
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		rec := httptest.NewRecorder()
		_, _ = websocket.Accept(rec, r, &websocket.AcceptOptions{OriginPatterns: patterns})
		if rec.Code == http.StatusForbidden {
			t.Fatalf("origin %q host %q: ours accepts, the library refuses: %s", origin, host, rec.Body)
		}
	})
}
