package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/signal"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/services/api-gateway/internal/gatewaytest"
	"github.com/courierhq/courier/services/api-gateway/internal/httpapi"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
	"github.com/courierhq/courier/services/api-gateway/internal/openapi"
)

// contract is docs/openapi.yaml (the embedded copy) as kin-openapi reads it,
// with a router from requests to its operations and the options every
// validation uses.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
}

func loadContract(t *testing.T) *contract {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Spec)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	// The document's server is localhost:8080 and the test servers listen
	// elsewhere: route on method and path alone.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		t.Fatal(err)
	}
	// The bearer scheme is checked as the server checks it: a token this
	// verifier accepts, so "no token" and "a bogus token" both break it.
	verifier, err := auth.NewHS256(secret, auth.Options{Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	return &contract{doc: doc, router: router, opts: &openapi3filter.Options{
		IncludeResponseStatus: true, // an undocumented status is drift, not "anything goes"
		MultiError:            true,
		AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			tok, err := auth.BearerToken(in.RequestValidationInput.Request.Header.Get("Authorization"))
			if err != nil {
				return fmt.Errorf("bearer: %w", err)
			}
			if _, err := verifier.Verify(tok); err != nil {
				return fmt.Errorf("bearer: %w", err)
			}
			return nil
		},
	}}
}

// request finds r's documented operation and validates r against it: the
// returned input (nil when r has no operation) is what responses to r are
// validated with, err says where r breaks the document.
func (c *contract) request(ctx context.Context, r *http.Request) (*openapi3filter.RequestValidationInput, error) {
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: no documented operation: %w", r.Method, r.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: c.opts}
	return in, openapi3filter.ValidateRequest(ctx, in)
}

// response validates one response to the request in: status, headers,
// media type and body.
func (c *contract) response(ctx context.Context, in *openapi3filter.RequestValidationInput, got resp) error {
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: got.status, Header: got.header, Options: c.opts,
	}
	out.SetBodyBytes(got.body)
	return openapi3filter.ValidateResponse(ctx, out)
}

// TestOpenAPIMatchesHandlers walks every documented path, method and
// response of docs/openapi.yaml against the real echo handlers: each one has
// a scenario whose request the document accepts (or refuses, when the server
// must refuse it too) and whose response, status included, the document
// describes. It also fails when a route exists that the document does not
// describe, or a scenario is left over for a response the document dropped.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	c := loadContract(t)
	scenarios := contractScenarios(t)
	documented := map[string]bool{}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				key := fmt.Sprintf("%s %s %s", method, path, code)
				documented[key] = true
				sc, ok := scenarios[key]
				if !ok {
					t.Errorf("%s: documented, but no scenario produces it", key)
					continue
				}
				t.Run(key, func(t *testing.T) {
					s := newServer(t, sc.opts)
					for range sc.warmup {
						s.do(t, sc.req)
					}
					in, err := c.request(t.Context(), s.request(t, sc.req))
					switch {
					case in == nil:
						t.Fatal(err)
					case sc.refused && err == nil:
						t.Errorf("the document accepts the request the server answers %s to", code)
					case !sc.refused && err != nil:
						t.Errorf("the document refuses the request: %v", err)
					}
					got := s.do(t, sc.req)
					if fmt.Sprint(got.status) != code {
						t.Fatalf("status %d, want %s: %s", got.status, code, got.body)
					}
					if err := c.response(t.Context(), in, got); err != nil {
						t.Errorf("the response breaks the document: %v", err)
					}
				})
			}
		}
	}
	for key := range scenarios {
		if !documented[key] {
			t.Errorf("%s: scenario for an undocumented response", key)
		}
	}

	// Every route the server has is documented (echo ":id" is "{id}").
	e := httpapi.New(httpapi.Config{})
	for _, r := range e.Routes() {
		p := regexp.MustCompile(`:(\w+)`).ReplaceAllString(r.Path, "{$1}")
		if item := c.doc.Paths.Value(p); item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not documented", r.Method, r.Path)
		}
	}
}

// signalsFunc is a Signals whose Send is a function.
type signalsFunc func(from string, r signal.Request) error

func (f signalsFunc) Send(_ context.Context, from string, r signal.Request) error { return f(from, r) }

// fakePresence: the users in online are online and shared with everyone.
type fakePresence struct {
	online map[string]bool
	err    error
}

func (f fakePresence) States(_ context.Context, users []string) (map[string]online.State, error) {
	out := map[string]online.State{}
	for _, u := range users {
		if f.online[u] {
			out[u] = online.State{Online: true, LastSeen: time.Now()}
		}
	}
	return out, f.err
}

func (f fakePresence) Shares(_ context.Context, _ string, others []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, o := range others {
		out[o] = f.online[o]
	}
	return out, f.err
}

type scenario struct {
	opts options
	req  req
	// warmup requests (identical) are made first, e.g. to spend a burst.
	warmup int
	// refused: the document itself rules the request out (bad body, no or
	// a bogus token, wrong media type), so the server must refuse it too.
	refused bool
}

func contractScenarios(t *testing.T) map[string]scenario {
	alice := token(t, "alice")
	sent := timestamppb.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	store := inboxtest.NewMemory()
	inboxtest.MustCommit(t, store,
		&courierv1.Envelope{MessageId: "m1", Sender: "bob", Recipients: []string{"alice", "carol"}, Payload: []byte(`[1,"two"]`),
			ContentType: "application/json", SentAt: sent},
		inboxtest.Envelope("m3", "bob", "alice"),
		// What alice once sent with Idempotency-Key "k-409".
		inboxtest.Envelope(messages.DeriveID("alice", "k-409"), "alice", "carol"))
	if err := inboxtest.MarkDelivered(context.Background(), store, "m1", "carol"); err != nil {
		t.Fatal(err)
	}
	down := status.Error(codes.Unavailable, "down")
	brokenStore := inboxtest.NewFaulty()
	brokenStore.ListFunc = func(context.Context, string, int64, int) ([]inbox.Entry, error) { return nil, down }
	brokenStore.GetFunc = func(context.Context, string) (inbox.Stored, error) { return inbox.Stored{}, down }
	brokenStore.MarkDeliveredBatchFunc = func(_ context.Context, acks []inbox.Ack) []error { return []error{down} }
	brokenStore.ConversationsErr = down
	dm := wire.DeriveConversationID([]string{"alice", "bob"})
	readReq := func(body string) req {
		return req{method: "POST", path: "/v1/conversations/" + dm + "/read", token: alice, body: body}
	}
	brokenPub := gatewaytest.Failing(down)
	// A burst of 1, spent by the scenario's warm-up request.
	limited := options{rate: ratelimit.Options{PerSecond: 0.001, Burst: 1}}
	spend := func(o options, r req) scenario {
		o.store = store
		return scenario{opts: o, req: r, warmup: 1}
	}
	ok := options{store: store}
	sig := options{signals: signalsFunc(func(string, signal.Request) error { return nil })}
	pres := options{presence: fakePresence{online: map[string]bool{"bob": true}}}
	signalReq := func(body string) req { return req{method: "POST", path: "/v1/signals", token: alice, body: body} }
	post := func(body string) req { return req{method: "POST", path: "/v1/messages", token: alice, body: body} }
	upCheck := map[string]health.Check{"pubsub": func(context.Context) error { return nil }}
	downCheck := map[string]health.Check{"pubsub": func(context.Context) error { return down }}

	sc := map[string]scenario{
		"POST /v1/messages 202": {opts: ok, req: post(okBody)},
		"POST /v1/messages 400": {opts: ok, req: post(`{"to":[]}`), refused: true},
		"POST /v1/messages 401": {opts: ok, req: req{method: "POST", path: "/v1/messages", body: okBody}, refused: true},
		"POST /v1/messages 409": {opts: ok, req: req{method: "POST", path: "/v1/messages", token: alice, body: okBody,
			headers: map[string]string{"Idempotency-Key": "k-409"}}},
		"POST /v1/messages 413": {opts: options{maxBody: 1024}, req: post(`{"to":["bob"],"payload":"` + strings.Repeat("x", 2048) + `"}`)},
		"POST /v1/messages 415": {opts: ok, req: req{method: "POST", path: "/v1/messages", token: alice, body: okBody, ctype: "text/plain"}, refused: true},
		"POST /v1/messages 429": spend(limited, post(okBody)),
		"POST /v1/messages 503": {opts: options{pub: brokenPub}, req: post(okBody)},

		"GET /v1/messages 200": {opts: ok, req: req{path: "/v1/messages?limit=2", token: alice}},
		// An opaque cursor the document cannot judge; the server can.
		"GET /v1/messages 400": {opts: ok, req: req{path: "/v1/messages?cursor=bogus", token: alice}},
		"GET /v1/messages 401": {opts: ok, req: req{path: "/v1/messages"}, refused: true},
		"GET /v1/messages 429": spend(limited, req{path: "/v1/messages", token: alice}),
		"GET /v1/messages 503": {opts: options{store: brokenStore}, req: req{path: "/v1/messages", token: alice}},

		"GET /v1/messages/{id} 200": {opts: ok, req: req{path: "/v1/messages/m1", token: alice}},
		"GET /v1/messages/{id} 401": {opts: ok, req: req{path: "/v1/messages/m1", token: "expired.or.bogus"}, refused: true},
		"GET /v1/messages/{id} 404": {opts: ok, req: req{path: "/v1/messages/m2", token: alice}},
		"GET /v1/messages/{id} 429": spend(limited, req{path: "/v1/messages/m1", token: alice}),
		"GET /v1/messages/{id} 503": {opts: options{store: brokenStore}, req: req{path: "/v1/messages/m1", token: alice}},

		"POST /v1/messages/{id}/ack 204": {opts: ok, req: req{method: "POST", path: "/v1/messages/m3/ack", token: alice}},
		"POST /v1/messages/{id}/ack 401": {opts: ok, req: req{method: "POST", path: "/v1/messages/m3/ack"}, refused: true},
		// alice sent this one: only recipients ack.
		"POST /v1/messages/{id}/ack 404": {opts: ok, req: req{method: "POST", path: "/v1/messages/" + messages.DeriveID("alice", "k-409") + "/ack", token: alice}},
		"POST /v1/messages/{id}/ack 429": spend(limited, req{method: "POST", path: "/v1/messages/m3/ack", token: alice}),
		"POST /v1/messages/{id}/ack 503": {opts: options{store: brokenStore}, req: req{method: "POST", path: "/v1/messages/m3/ack", token: alice}},

		"GET /v1/conversations 200": {opts: ok, req: req{path: "/v1/conversations?limit=1", token: alice}},
		"GET /v1/conversations 400": {opts: ok, req: req{path: "/v1/conversations?cursor=bogus", token: alice}},
		"GET /v1/conversations 401": {opts: ok, req: req{path: "/v1/conversations"}, refused: true},
		"GET /v1/conversations 429": spend(limited, req{path: "/v1/conversations", token: alice}),
		"GET /v1/conversations 503": {opts: options{store: brokenStore}, req: req{path: "/v1/conversations", token: alice}},

		"GET /v1/conversations/{id}/messages 200": {opts: ok, req: req{path: "/v1/conversations/" + dm + "/messages?limit=1", token: alice}},
		"GET /v1/conversations/{id}/messages 400": {opts: ok, req: req{path: "/v1/conversations/" + dm + "/messages?before=bogus", token: alice}},
		"GET /v1/conversations/{id}/messages 401": {opts: ok, req: req{path: "/v1/conversations/" + dm + "/messages"}, refused: true},
		"GET /v1/conversations/{id}/messages 429": spend(limited, req{path: "/v1/conversations/" + dm + "/messages", token: alice}),
		"GET /v1/conversations/{id}/messages 503": {opts: options{store: brokenStore}, req: req{path: "/v1/conversations/" + dm + "/messages", token: alice}},

		"POST /v1/conversations/{id}/read 200": {opts: ok, req: readReq(`{"cursor":"` + inbox.EncodeCursor(2) + `"}`)},
		"POST /v1/conversations/{id}/read 400": {opts: ok, req: readReq(`{"cursor":"bogus"}`)},
		"POST /v1/conversations/{id}/read 401": {opts: ok, req: req{method: "POST", path: "/v1/conversations/" + dm + "/read", body: `{"cursor":"x"}`}, refused: true},
		"POST /v1/conversations/{id}/read 415": {opts: ok, req: req{method: "POST", path: "/v1/conversations/" + dm + "/read", token: alice, body: `{"cursor":"x"}`, ctype: "text/plain"}, refused: true},
		"POST /v1/conversations/{id}/read 429": spend(limited, readReq(`{"cursor":"`+inbox.EncodeCursor(2)+`"}`)),
		"POST /v1/conversations/{id}/read 503": {opts: options{store: brokenStore}, req: readReq(`{"cursor":"` + inbox.EncodeCursor(2) + `"}`)},

		"POST /v1/signals 202": {opts: sig, req: signalReq(`{"to":["bob"],"kind":"typing","data":{"on":true}}`)},
		"POST /v1/signals 400": {opts: sig, req: signalReq(`{"to":["bob"],"kind":"Typing!"}`), refused: true},
		"POST /v1/signals 401": {opts: sig, req: req{method: "POST", path: "/v1/signals", body: `{"to":["bob"],"kind":"typing"}`}, refused: true},
		"POST /v1/signals 413": {opts: sig, req: signalReq(`{"to":["bob"],"kind":"typing","data":"` + strings.Repeat("x", 1100) + `"}`)},
		"POST /v1/signals 415": {opts: sig, req: req{method: "POST", path: "/v1/signals", token: alice, body: `{}`, ctype: "text/plain"}, refused: true},
		"POST /v1/signals 429": {opts: options{signals: sig.signals, signalRate: ratelimit.Options{PerSecond: 0.001, Burst: 1}},
			req: signalReq(`{"to":["bob"],"kind":"typing"}`), warmup: 1},
		"POST /v1/signals 503": {opts: options{signals: signalsFunc(func(string, signal.Request) error {
			return &signal.Error{Code: signal.CodeUnavailable, Message: "not now"}
		})}, req: signalReq(`{"to":["bob"],"kind":"typing"}`)},

		"GET /v1/presence 200": {opts: pres, req: req{path: "/v1/presence?users=bob,carol", token: alice}},
		"GET /v1/presence 400": {opts: pres, req: req{path: "/v1/presence?users=a/b", token: alice}},
		"GET /v1/presence 401": {opts: pres, req: req{path: "/v1/presence?users=bob"}, refused: true},
		"GET /v1/presence 429": spend(options{presence: pres.presence, rate: limited.rate}, req{path: "/v1/presence?users=bob", token: alice}),
		"GET /v1/presence 503": {opts: options{presence: fakePresence{err: down}}, req: req{path: "/v1/presence?users=bob", token: alice}},

		"GET /v1/openapi.yaml 200": {opts: ok, req: req{path: "/v1/openapi.yaml"}},
		"GET /healthz 200":         {opts: ok, req: req{path: "/healthz"}},
		"GET /readyz 200":          {opts: options{ready: upCheck}, req: req{path: "/readyz"}},
		"GET /readyz 503":          {opts: options{ready: downCheck}, req: req{path: "/readyz"}},
	}
	return sc
}

// TestContractCatchesDrift proves the contract test has teeth: responses and
// requests that drift from the document in each way it checks are refused,
// while the same exchanges without the drift pass.
func TestContractCatchesDrift(t *testing.T) {
	c := loadContract(t)
	alice := token(t, "alice")
	msg := map[string]any{"id": "m1", "from": "a", "to": []any{"b"}, "to_count": 1, "payload": 1,
		"content_type": "x", "sent_at": "2026-01-01T00:00:00Z"}
	view := map[string]any{"message": msg, "state": "stored", "delivered_to": []any{}, "delivered_count": 0}
	entry := with(msg, "cursor", "c")
	page := func(e map[string]any) map[string]any {
		return map[string]any{"messages": []any{e}, "next_cursor": "c", "has_more": false}
	}
	problem := map[string]any{"type": "urn:courier:problem:rate_limited", "title": "Too Many Requests", "status": 429,
		"code": "rate_limited", "detail": "slow down", "request_id": "r1"}
	retry := map[string]string{"Retry-After": "1"}

	for _, tc := range []struct {
		name   string
		path   string // of a GET by alice
		status int
		ctype  string
		header map[string]string
		body   any // JSON-encoded unless a string
		drift  bool
	}{
		{"message view", "/v1/messages/m1", 200, "application/json", nil, view, false},
		{"missing required property", "/v1/messages/m1", 200, "application/json", nil, without(view, "delivered_count"), true},
		{"undocumented property", "/v1/messages/m1", 200, "application/json", nil, with(view, "extra", 1), true},
		{"undocumented property of the message", "/v1/messages/m1", 200, "application/json", nil, with(view, "message", with(msg, "extra", 1)), true},
		{"enum violated", "/v1/messages/m1", 200, "application/json", nil, with(view, "state", "accepted"), true},
		{"wrong type", "/v1/messages/m1", 200, "application/json", nil, with(view, "delivered_to", "bob"), true},
		{"bad date-time", "/v1/messages/m1", 200, "application/json", nil, with(view, "message", with(msg, "sent_at", "yesterday")), true},
		{"bad user id", "/v1/messages/m1", 200, "application/json", nil, with(view, "delivered_to", []any{"a/b"}), true},
		{"undocumented status", "/v1/messages/m1", 500, "application/problem+json", nil, with(problem, "code", "internal"), true},
		{"undocumented media type", "/v1/messages/m1", 200, "text/html", nil, "<p>m1</p>", true},

		{"inbox page", "/v1/messages", 200, "application/json", nil, page(entry), false},
		{"entry without cursor", "/v1/messages", 200, "application/json", nil, page(msg), true},
		{"undocumented property of an entry", "/v1/messages", 200, "application/json", nil, page(with(entry, "extra", 1)), true},

		{"rate limited", "/v1/messages", 429, "application/problem+json", retry, problem, false},
		{"rate limited without Retry-After", "/v1/messages", 429, "application/problem+json", nil, problem, true},
		{"unknown problem code", "/v1/messages", 429, "application/problem+json", retry, with(problem, "code", "slow_down"), true},

		{"the document", "/v1/openapi.yaml", 200, "application/yaml", nil, string(openapi.Spec), false},
		{"YAML that is no OpenAPI document", "/v1/openapi.yaml", 200, "application/yaml", nil, "hello: world\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, "http://gateway.test"+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", "Bearer "+alice)
			in, err := c.request(t.Context(), r)
			if err != nil {
				t.Fatalf("the request itself is refused: %v", err)
			}
			got := resp{status: tc.status, header: http.Header{"Content-Type": {tc.ctype}}}
			for k, v := range tc.header {
				got.header.Set(k, v)
			}
			if s, ok := tc.body.(string); ok {
				got.body = []byte(s)
			} else if got.body, err = json.Marshal(tc.body); err != nil {
				t.Fatal(err)
			}
			wantDrift(t, tc.drift, c.response(t.Context(), in, got))
		})
	}

	for _, tc := range []struct {
		name, body, key string
		drift           bool
	}{
		{"send", okBody, "k1", false},
		{"undocumented property", `{"to":["bob"],"payload":1,"priority":"high"}`, "", true},
		{"no recipients", `{"to":[],"payload":1}`, "", true},
		{"recipient that is no user id", `{"to":["a/b"],"payload":1}`, "", true},
		{"Idempotency-Key too long", okBody, strings.Repeat("k", 129), true},
	} {
		t.Run("request/"+tc.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPost, "http://gateway.test/v1/messages", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", "Bearer "+alice)
			r.Header.Set("Content-Type", "application/json")
			if tc.key != "" {
				r.Header.Set("Idempotency-Key", tc.key)
			}
			in, err := c.request(t.Context(), r)
			if in == nil {
				t.Fatal(err)
			}
			wantDrift(t, tc.drift, err)
		})
	}
}

// wantDrift: validation refused the exchange (err) exactly when it drifts.
func wantDrift(t *testing.T, drift bool, err error) {
	t.Helper()
	switch {
	case drift && err == nil:
		t.Fatal("drift not reported")
	case !drift && err != nil:
		t.Fatalf("an exchange the document describes is refused: %v", err)
	case err != nil:
		t.Logf("caught: %v", err)
	}
}

// with returns a copy of m with k set to v; without, a copy without k.
func with(m map[string]any, k string, v any) map[string]any {
	out := maps.Clone(m)
	out[k] = v
	return out
}

func without(m map[string]any, k string) map[string]any {
	out := maps.Clone(m)
	delete(out, k)
	return out
}
