package harness

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Fault modes of a FaultProxy: what happens to the answer of the next
// POST /v1/messages after the gateway has answered it.
const (
	// FaultReplace503 answers 503 unavailable instead of the gateway's answer.
	FaultReplace503 = "503"
	// FaultDrop cuts the client's connection without an answer.
	FaultDrop = "drop"
)

// ProxiedSend is one POST /v1/messages that went through a FaultProxy.
type ProxiedSend struct {
	Key      string `json:"key"`      // Idempotency-Key
	Upstream int    `json:"upstream"` // the gateway's status
	Fault    string `json:"fault"`    // "" when the answer was passed on
}

// FaultProxy is an HTTP reverse proxy in front of the gateway that can lose
// the answer to a send the gateway accepted, so a client's retry can be
// shown to store the message once. Everything else passes through.
type FaultProxy struct {
	URL      string
	upstream string
	client   *http.Client

	mu    sync.Mutex
	armed []string
	log   []ProxiedSend
}

// StartFaultProxy starts a proxy to upstream (a base URL); it stops when the test ends.
func StartFaultProxy(t testing.TB, upstream string) *FaultProxy {
	t.Helper()
	p := &FaultProxy{upstream: upstream, client: &http.Client{Timeout: 30 * time.Second}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Arm makes the next send's answer suffer mode (queued in order).
func (p *FaultProxy) Arm(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = append(p.armed, mode)
}

// Log returns every send that went through, in order.
func (p *FaultProxy) Log() []ProxiedSend {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProxiedSend(nil), p.log...)
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "proxy: read body: "+err.Error(), http.StatusBadGateway)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, "proxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, "proxy: upstream body: "+err.Error(), http.StatusBadGateway)
		return
	}

	fault := ""
	if r.Method == http.MethodPost && r.URL.Path == "/v1/messages" {
		p.mu.Lock()
		if len(p.armed) > 0 {
			fault, p.armed = p.armed[0], p.armed[1:]
		}
		p.log = append(p.log, ProxiedSend{Key: r.Header.Get("Idempotency-Key"), Upstream: resp.StatusCode, Fault: fault})
		p.mu.Unlock()
	}
	switch fault {
	case FaultReplace503:
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"type":"urn:courier:problem:unavailable","title":"Service Unavailable","status":503,"code":"unavailable","detail":"fault proxy: the gateway's answer was lost"}`)
		return
	case FaultDrop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}
