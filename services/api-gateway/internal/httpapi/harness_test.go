package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/telemetry"
	"github.com/courierhq/courier/pkg/testenv"

	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/services/api-gateway/internal/authn"
	"github.com/courierhq/courier/services/api-gateway/internal/gatewaytest"
	"github.com/courierhq/courier/services/api-gateway/internal/httpapi"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
	"github.com/courierhq/courier/services/api-gateway/internal/metrics"
	"github.com/courierhq/courier/services/api-gateway/internal/openapi"
	"github.com/courierhq/courier/services/api-gateway/internal/transport"
)

// spans records every span of every test in this package; tests find
// theirs by trace id or message id.
var spans = testenv.RecordSpans()

var secret = []byte("test-secret-of-at-least-16-bytes")

const (
	testIssuer   = "https://issuer.test"
	testAudience = "courier"
)

// token mints a valid token for sub, with the issuer and audience the test
// verifier wants.
func token(t testing.TB, sub string) string {
	return signed(t, jwt.SigningMethodHS256, secret, jwt.RegisteredClaims{
		Subject: sub, Issuer: testIssuer, Audience: jwt.ClaimStrings{testAudience},
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	})
}

func signed(t testing.TB, m jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type options struct {
	pub         messages.Publisher
	store       messages.Store
	limits      messages.Limits
	rate        ratelimit.Options
	maxBody     int64
	timeout     time.Duration
	cors        []string
	ready       map[string]health.Check
	noIssuerAud bool
	verifier    authn.Verifier // HS256 with secret when nil
	signals     httpapi.Signals
	presence    httpapi.Presence
	signalRate  ratelimit.Options
}

type testServer struct {
	*httptest.Server
	reg  *prometheus.Registry
	logs *testenv.LogBuffer
}

func newServer(t testing.TB, o options) *testServer {
	t.Helper()
	o.pub, o.store, o.rate = gatewaytest.Defaults(o.pub, o.store, o.rate)
	ao := auth.Options{Issuer: testIssuer, Audience: testAudience}
	if o.noIssuerAud {
		ao = auth.Options{}
	}
	var v authn.Verifier = o.verifier
	if v == nil {
		hs, err := auth.NewHS256(secret, ao)
		if err != nil {
			t.Fatal(err)
		}
		v = hs
	}
	lim := ratelimit.New(o.rate)
	reg := prometheus.NewRegistry()
	logs := &testenv.LogBuffer{}
	e := httpapi.New(httpapi.Config{
		Config: transport.Config{
			Service:        messages.New(o.pub, o.store, o.limits),
			Verifier:       v,
			Limiter:        lim,
			Metrics:        metrics.New(reg, func() float64 { return float64(lim.Len()) }),
			Logger:         telemetry.NewLogger(logs, telemetry.LogOptions{Level: slog.LevelDebug}),
			RequestTimeout: o.timeout,
		},
		Ready:        o.ready,
		MaxBodyBytes: o.maxBody,
		CORSOrigins:  o.cors,
		OpenAPI:      openapi.Spec,
		Signals:      o.signals,
		Presence:     o.presence,
		SignalLimiter: func() ratelimit.Allower {
			if o.signalRate.PerSecond == 0 {
				return nil
			}
			return ratelimit.New(o.signalRate)
		}(),
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, reg: reg, logs: logs}
}

// req describes one request; zero fields take sensible defaults.
type req struct {
	method  string
	path    string
	body    string
	token   string // "" sends no Authorization (unless header sets one)
	ctype   string // default application/json when there is a body
	headers map[string]string
	chunked bool // hide Content-Length
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (s *testServer) do(t testing.TB, r req) resp {
	t.Helper()
	res, err := http.DefaultClient.Do(s.request(t, r))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// request builds the HTTP request r describes, addressed to s.
func (s *testServer) request(t testing.TB, r req) *http.Request {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
		if r.chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
	}
	hr, err := http.NewRequest(r.method, s.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != "" && r.ctype == "" {
		r.ctype = "application/json"
	}
	if r.ctype != "" && r.ctype != "-" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	return hr
}

// wantProblem checks a problem+json answer's status, code and shape.
func wantProblem(t testing.TB, r resp, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != httpapi.MediaTypeProblem {
		t.Fatalf("Content-Type = %q, want %s", ct, httpapi.MediaTypeProblem)
	}
	p := r.json(t)
	if p["code"] != code || p["status"] != float64(status) || p["type"] != "urn:courier:problem:"+code {
		t.Fatalf("problem = %v, want code %s status %d", p, code, status)
	}
	if s, _ := p["title"].(string); s == "" {
		t.Fatalf("problem without title: %v", p)
	}
	if s, _ := p["detail"].(string); s == "" {
		t.Fatalf("problem without detail: %v", p)
	}
	if p["request_id"] != r.header.Get("X-Request-ID") || r.header.Get("X-Request-ID") == "" {
		t.Fatalf("request_id %v vs header %q", p["request_id"], r.header.Get("X-Request-ID"))
	}
	return p
}
