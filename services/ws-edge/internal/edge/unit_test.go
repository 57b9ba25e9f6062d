package edge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/topology"
)

func TestPodNames(t *testing.T) {
	for in, want := range map[string]string{
		"ws-edge-7d9f8c-abcde":         "ws-edge-7d9f8c-abcde",
		"My_Host.example.com":          "my-host-example-com",
		"--weird--":                    "weird",
		"UPPER":                        "upper",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + "-b": strings.Repeat("a", 62),
		"":                             "",
	} {
		got := SanitizePodName(in)
		if got != want {
			t.Errorf("SanitizePodName(%q) = %q, want %q", in, got, want)
		}
		if got != "" {
			if err := ValidatePodName(got); err != nil {
				t.Errorf("sanitized %q is invalid: %v", got, err)
			}
		}
	}
	for _, bad := range []string{"", "-a", "a-", "A", "a_b", "a.b", strings.Repeat("a", 64)} {
		if ValidatePodName(bad) == nil {
			t.Errorf("ValidatePodName(%q) accepted", bad)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	patterns := []string{"app.example.com", "https://*.courier.test"}
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},                        // not a browser
		{"http://edge.local:8081", true},  // same host as the request
		{"https://app.example.com", true}, // host pattern, any scheme
		{"http://app.example.com", true},  //
		{"https://eu.courier.test", true}, // scheme://host pattern
		{"http://eu.courier.test", false}, // wrong scheme
		{"https://evil.example", false},   //
		{"https://app.example.com.evil", false},
		{"null", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://edge.local:8081/v1/ws", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if err := checkOrigin(r, patterns); (err == nil) != tc.ok {
			t.Errorf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
	}
}

type nopPresence struct{}

func (nopPresence) Beat(context.Context, string, string, time.Time) error { return nil }
func (nopPresence) Remove(context.Context, string) error                  { return nil }

func newTestEdge(t *testing.T, devSecret []byte) *Edge {
	t.Helper()
	v, err := auth.NewHS256([]byte("unit-test-secret-0123456789"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Pod: "edge-u", Topology: topology.Default("p"), GatewayURL: "http://gw.test", DevSecret: devSecret},
		Deps{Verifier: v, Presence: nopPresence{}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDevTokenOnlyWithDevSecret(t *testing.T) {
	secret := []byte("dev-secret-0123456789")
	on := newTestEdge(t, secret).Handler()
	rec := httptest.NewRecorder()
	on.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/dev/token", strings.NewReader(`{"user":"alice"}`)))
	var tok devTokenResponse
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &tok) != nil {
		t.Fatalf("dev token: %d %s", rec.Code, rec.Body)
	}
	v, _ := auth.NewHS256(secret, auth.Options{})
	if p, err := v.Verify(tok.Token); err != nil || p.UserID != "alice" {
		t.Fatalf("minted token: %v %v", p, err)
	}
	for _, body := range []string{`{"user":"a/b"}`, `nope`, `{}`} {
		rec := httptest.NewRecorder()
		on.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/dev/token", strings.NewReader(body)))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("dev token with %s: %d", body, rec.Code)
		}
	}

	off := newTestEdge(t, nil).Handler()
	rec = httptest.NewRecorder()
	off.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/dev/token", strings.NewReader(`{"user":"alice"}`)))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Header().Get("Content-Type"), "json") {
		t.Fatalf("dev token without the dev secret: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	off.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/config.json", nil))
	var cfg clientConfig
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &cfg) != nil || cfg.DevLogin || cfg.GatewayURL != "http://gw.test" || cfg.Pod != "edge-u" {
		t.Fatalf("config.json: %d %s", rec.Code, rec.Body)
	}
}

func TestStaticClientAndReadiness(t *testing.T) {
	h := newTestEdge(t, nil).Handler()
	for path, want := range map[string]string{"/": "<title>Courier demo</title>", "/app.js": "function connect()"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d", path, rec.Code)
		}
	}
	// Not ready before the subscription exists.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz before Start: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "courier_ws_edge_sessions") {
		t.Errorf("metrics: %d", rec.Code)
	}
}
