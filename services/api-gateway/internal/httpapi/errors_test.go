package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/services/api-gateway/internal/gatewaytest"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
)

const okBody = `{"to":["bob"],"payload":{"text":"hi"}}`

// TestErrorPaths walks every error a client can cause (or suffer) on the
// REST API and checks its status, machine code and problem shape.
func TestErrorPaths(t *testing.T) {
	s := newServer(t, options{
		limits:  messages.Limits{MaxRecipients: 3, MaxPayloadBytes: 100},
		maxBody: 1024,
	})
	alice := token(t, "alice")
	now := time.Now()
	claims := func(mod func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{Subject: "alice", Issuer: testIssuer, Audience: jwt.ClaimStrings{testAudience},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
		mod(&c)
		return c
	}
	noneTok := signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(func(*jwt.RegisteredClaims) {}))
	expired := signed(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
	}))
	otherKey := signed(t, jwt.SigningMethodHS256, []byte("some-other-secret-0123456789"), claims(func(*jwt.RegisteredClaims) {}))
	wrongIss := signed(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.test" }))
	wrongAud := signed(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"other"} }))
	noExp := signed(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }))
	badSub := signed(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Subject = "a/b" }))
	tampered := alice[:len(alice)-4] + "AAAA"

	post := func(body string) req { return req{method: "POST", path: "/v1/messages", body: body, token: alice} }
	with := func(r req, f func(*req)) req { f(&r); return r }

	for _, tc := range []struct {
		name   string
		r      req
		status int
		code   string
	}{
		// 401
		{"no token", req{method: "POST", path: "/v1/messages", body: okBody}, 401, "unauthenticated"},
		{"not bearer", with(post(okBody), func(r *req) { r.token = ""; r.headers = map[string]string{"Authorization": "Basic YWxpY2U6cHc="} }), 401, "unauthenticated"},
		{"bearer without token", with(post(okBody), func(r *req) { r.token = ""; r.headers = map[string]string{"Authorization": "Bearer "} }), 401, "unauthenticated"},
		{"garbage token", with(post(okBody), func(r *req) { r.token = "not.a.jwt" }), 401, "unauthenticated"},
		{"alg none", with(post(okBody), func(r *req) { r.token = noneTok }), 401, "unauthenticated"},
		{"expired", with(post(okBody), func(r *req) { r.token = expired }), 401, "unauthenticated"},
		{"bad signature", with(post(okBody), func(r *req) { r.token = otherKey }), 401, "unauthenticated"},
		{"tampered signature", with(post(okBody), func(r *req) { r.token = tampered }), 401, "unauthenticated"},
		{"wrong issuer", with(post(okBody), func(r *req) { r.token = wrongIss }), 401, "unauthenticated"},
		{"wrong audience", with(post(okBody), func(r *req) { r.token = wrongAud }), 401, "unauthenticated"},
		{"no expiry", with(post(okBody), func(r *req) { r.token = noExp }), 401, "unauthenticated"},
		{"invalid subject", with(post(okBody), func(r *req) { r.token = badSub }), 401, "unauthenticated"},
		{"list without token", req{path: "/v1/messages"}, 401, "unauthenticated"},
		{"get without token", req{path: "/v1/messages/abc"}, 401, "unauthenticated"},
		// 415
		{"no content type", with(post(okBody), func(r *req) { r.ctype = "-" }), 415, "unsupported_media_type"},
		{"text/plain", with(post(okBody), func(r *req) { r.ctype = "text/plain" }), 415, "unsupported_media_type"},
		{"form", with(post(okBody), func(r *req) { r.ctype = "application/x-www-form-urlencoded" }), 415, "unsupported_media_type"},
		{"latin1 charset", with(post(okBody), func(r *req) { r.ctype = "application/json; charset=latin1" }), 415, "unsupported_media_type"},
		// 400
		{"empty body", with(post(""), func(r *req) { r.ctype = "application/json" }), 400, "invalid_request"},
		{"malformed JSON", post(`{"to":["bob"],`), 400, "invalid_request"},
		{"not an object", post(`["bob"]`), 400, "invalid_request"},
		{"unknown member", post(`{"to":["bob"],"payload":1,"extra":true}`), 400, "invalid_request"},
		{"member in other case", post(`{"TO":["bob"],"payload":1}`), 400, "invalid_request"},
		{"duplicate member", post(`{"to":["bob"],"to":["carol"],"payload":1}`), 400, "invalid_request"},
		{"trailing data", post(okBody + `{}`), 400, "invalid_request"},
		{"trailing garbage", post(okBody + ` x`), 400, "invalid_request"},
		{"missing to", post(`{"payload":1}`), 400, "invalid_request"},
		{"missing payload", post(`{"to":["bob"]}`), 400, "invalid_request"},
		{"null payload", post(`{"to":["bob"],"payload":null}`), 400, "invalid_request"},
		{"to not an array", post(`{"to":"bob","payload":1}`), 400, "invalid_request"},
		{"to with a number", post(`{"to":[1],"payload":1}`), 400, "invalid_request"},
		{"empty to", post(`{"to":[],"payload":1}`), 400, "invalid_request"},
		{"too many recipients", post(`{"to":["a","b","c","d"],"payload":1}`), 400, "invalid_request"},
		{"duplicate recipients", post(`{"to":["bob","bob"],"payload":1}`), 400, "invalid_request"},
		{"invalid recipient", post(`{"to":["bob/../x"],"payload":1}`), 400, "invalid_request"},
		{"content_type not a string", post(`{"to":["bob"],"payload":1,"content_type":5}`), 400, "invalid_request"},
		{"content_type not a media type", post(`{"to":["bob"],"payload":1,"content_type":"nope"}`), 400, "invalid_request"},
		{"empty idempotency key", with(post(okBody), func(r *req) { r.headers = map[string]string{"Idempotency-Key": ""} }), 400, "invalid_request"},
		{"long idempotency key", with(post(okBody), func(r *req) { r.headers = map[string]string{"Idempotency-Key": strings.Repeat("k", 129)} }), 400, "invalid_request"},
		{"non-ASCII idempotency key", with(post(okBody), func(r *req) { r.headers = map[string]string{"Idempotency-Key": "clé"} }), 400, "invalid_request"},
		{"bad cursor", req{path: "/v1/messages?cursor=%21%21", token: alice}, 400, "invalid_request"},
		{"limit zero", req{path: "/v1/messages?limit=0", token: alice}, 400, "invalid_request"},
		{"limit negative", req{path: "/v1/messages?limit=-1", token: alice}, 400, "invalid_request"},
		{"limit not a number", req{path: "/v1/messages?limit=ten", token: alice}, 400, "invalid_request"},
		{"limit too large", req{path: "/v1/messages?limit=201", token: alice}, 400, "invalid_request"},
		// 413
		{"body too large", post(`{"to":["bob"],"payload":"` + strings.Repeat("x", 2000) + `"}`), 413, "payload_too_large"},
		{"chunked body too large", with(post(`{"to":["bob"],"payload":"`+strings.Repeat("x", 2000)+`"}`), func(r *req) { r.chunked = true }), 413, "payload_too_large"},
		{"payload too large", post(`{"to":["bob"],"payload":"` + strings.Repeat("x", 200) + `"}`), 413, "payload_too_large"},
		// 404 / 405
		{"unknown message", req{path: "/v1/messages/nope", token: alice}, 404, "not_found"},
		{"unknown route", req{path: "/v1/nothing-here", token: alice}, 404, "not_found"},
		{"unknown route without token", req{path: "/v2/messages"}, 404, "not_found"},
		{"method not allowed", req{method: "DELETE", path: "/v1/messages", token: alice}, 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, tc.r)
			wantProblem(t, r, tc.status, tc.code)
			if tc.status == 401 {
				want := `Bearer realm="courier", error="invalid_token"`
				if tc.r.token == "" && tc.r.headers == nil {
					want = `Bearer realm="courier"` // RFC 6750 §3.1: no error code without a token
				}
				if got := r.header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
			}
			if tc.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow header")
			}
		})
	}
	// The valid request the table mutates is indeed valid.
	if r := s.do(t, post(okBody)); r.status != http.StatusAccepted {
		t.Fatalf("baseline request: %d %s", r.status, r.body)
	}
}

func TestRateLimited(t *testing.T) {
	s := newServer(t, options{rate: ratelimit.Options{PerSecond: 0.5, Burst: 2}})
	alice, bob := token(t, "alice"), token(t, "bob")
	for i := range 2 {
		if r := s.do(t, req{path: "/v1/messages", token: alice}); r.status != 200 {
			t.Fatalf("request %d within burst: %d", i, r.status)
		}
	}
	r := s.do(t, req{method: "POST", path: "/v1/messages", token: alice, body: okBody})
	wantProblem(t, r, 429, "rate_limited")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// Per user: bob is unaffected.
	if r := s.do(t, req{path: "/v1/messages", token: bob}); r.status != 200 {
		t.Fatalf("bob limited by alice's usage: %d", r.status)
	}
	if !strings.Contains(scrape(t, s), `courier_api_gateway_rate_limited_total{transport="http"} 1`) {
		t.Error("rate_limited_total not counted")
	}
}

func TestUnavailable(t *testing.T) {
	t.Run("publish fails", func(t *testing.T) {
		s := newServer(t, options{pub: gatewaytest.Failing(status.Error(codes.Unavailable, "pubsub down"))})
		r := s.do(t, req{method: "POST", path: "/v1/messages", token: token(t, "alice"), body: okBody,
			headers: map[string]string{"Idempotency-Key": "k1"}})
		p := wantProblem(t, r, 503, "unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if strings.Contains(fmt.Sprint(p), "pubsub down") {
			t.Errorf("internal cause leaked: %v", p)
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		s := newServer(t, options{timeout: 100 * time.Millisecond, pub: gatewaytest.PublishFunc(func(ctx context.Context, _ *courierv1.Envelope) error {
			<-ctx.Done() // a publish that never confirms
			return ctx.Err()
		})})
		start := time.Now()
		r := s.do(t, req{method: "POST", path: "/v1/messages", token: token(t, "alice"), body: okBody})
		wantProblem(t, r, 503, "unavailable")
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("timeout took %s", d)
		}
	})
	t.Run("store fails", func(t *testing.T) {
		store := inboxtest.NewFaulty()
		store.ListFunc = func(context.Context, string, int64, int) ([]inbox.Entry, error) {
			return nil, status.Error(codes.Unavailable, "firestore down")
		}
		s := newServer(t, options{store: store})
		wantProblem(t, s.do(t, req{path: "/v1/messages", token: token(t, "alice")}), 503, "unavailable")
	})
}

func TestInternalErrors(t *testing.T) {
	store := inboxtest.NewFaulty()
	store.GetFunc = func(context.Context, string) (inbox.Stored, error) {
		return inbox.Stored{}, errors.New("secret internal detail")
	}
	store.ListFunc = func(context.Context, string, int64, int) ([]inbox.Entry, error) { panic("boom") }
	s := newServer(t, options{store: store})
	alice := token(t, "alice")
	p := wantProblem(t, s.do(t, req{path: "/v1/messages/m1", token: alice}), 500, "internal")
	if strings.Contains(fmt.Sprint(p), "secret") {
		t.Errorf("internal detail leaked: %v", p)
	}
	// A panicking handler answers 500 and the server keeps serving.
	wantProblem(t, s.do(t, req{path: "/v1/messages", token: alice}), 500, "internal")
	if r := s.do(t, req{path: "/healthz"}); r.status != 200 {
		t.Fatalf("server dead after panic: %d", r.status)
	}
	if len(s.logs.Lines("panic in handler")) != 1 {
		t.Error("panic not logged")
	}
}

func TestRequestID(t *testing.T) {
	s := newServer(t, options{})
	r := s.do(t, req{path: "/healthz", headers: map[string]string{"X-Request-ID": "client-id.42"}})
	if r.header.Get("X-Request-ID") != "client-id.42" {
		t.Errorf("kept id: %q", r.header.Get("X-Request-ID"))
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 129), "inject\"quote"} {
		r := s.do(t, req{path: "/healthz", headers: map[string]string{"X-Request-ID": bad}})
		if got := r.header.Get("X-Request-ID"); got == bad || len(got) != 32 {
			t.Errorf("X-Request-ID %q answered with %q, want a generated one", bad, got)
		}
	}
	a := s.do(t, req{path: "/healthz"}).header.Get("X-Request-ID")
	b := s.do(t, req{path: "/healthz"}).header.Get("X-Request-ID")
	if a == b {
		t.Error("generated ids repeat")
	}
}

// scrape reads the server's metrics as the admin listener serves them
// (ADMIN_ADDR); the public handler does not serve them any more.
func scrape(t testing.TB, s *testServer) string {
	t.Helper()
	rec := httptest.NewRecorder()
	adminserver.Handler(s.reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestMetricsNotOnThePublicPort: the REST handler, which sits behind the
// ingress, answers /metrics with a plain 404 (problem+json), so neither an
// operator's mistake nor a path-prefix ingress rule can publish them.
func TestMetricsNotOnThePublicPort(t *testing.T) {
	s := newServer(t, options{})
	for _, path := range []string{"/metrics", "/metrics/", "/v1/metrics"} {
		r := s.do(t, req{path: path})
		if r.status != http.StatusNotFound || !strings.Contains(string(r.body), `"not_found"`) {
			t.Errorf("GET %s on the public port: %d %s, want 404 not_found", path, r.status, r.body)
		}
	}
	if !strings.Contains(scrape(t, s), "courier_api_gateway_http_requests_total") {
		t.Error("the gateway's metrics are not in its registry")
	}
}
