package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/gatewaytest"
	"github.com/courierhq/courier/services/api-gateway/internal/httpapi"
	"github.com/courierhq/courier/services/api-gateway/internal/openapi"
	"github.com/courierhq/courier/services/api-gateway/internal/ratelimit"
)

// TestOpenAPIMatchesHandlers walks every documented path, method and
// response of docs/openapi.yaml against the real echo handlers: each one
// has a scenario that produces it, answers with a documented media type
// and headers, and a body valid against the documented schema. It also
// fails when a route exists that the document does not describe, or a
// scenario is left over for a response the document dropped.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	var spec map[string]any
	if err := yaml.Unmarshal(openapi.Spec, &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	v := &validator{spec: spec}

	scenarios := contractScenarios(t)
	documented := map[string]bool{}
	paths := spec["paths"].(map[string]any)
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			method = strings.ToUpper(method)
			for code, r := range op.(map[string]any)["responses"].(map[string]any) {
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
					got := s.do(t, sc.req)
					if fmt.Sprint(got.status) != code {
						t.Fatalf("status %d, want %s: %s", got.status, code, got.body)
					}
					v.checkResponse(t, v.resolve(r), got)
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
	e := httpapi.New(httpapi.Config{Gatherer: nil})
	for _, r := range e.Routes() {
		p := regexp.MustCompile(`:(\w+)`).ReplaceAllString(r.Path, "{$1}")
		if r.Path == httpapi.PathMetrics {
			continue // registered only with a Gatherer; documented anyway
		}
		item, ok := paths[p].(map[string]any)
		if !ok || item[strings.ToLower(r.Method)] == nil {
			t.Errorf("route %s %s is not documented", r.Method, r.Path)
		}
	}
}

type scenario struct {
	opts options
	req  req
	// warmup requests (identical) are made first, e.g. to spend a burst.
	warmup int
}

func contractScenarios(t *testing.T) map[string]scenario {
	alice := token(t, "alice")
	sent := timestamppb.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	store := inboxtest.NewMemory()
	inboxtest.MustCommit(t, store,
		&courierv1.Envelope{MessageId: "m1", Sender: "bob", Recipients: []string{"alice", "carol"}, Payload: []byte(`[1,"two"]`),
			ContentType: "application/json", SentAt: sent},
		inboxtest.Envelope("m3", "bob", "alice"))
	if err := store.MarkDelivered(context.Background(), "m1", "carol"); err != nil {
		t.Fatal(err)
	}
	down := status.Error(codes.Unavailable, "down")
	brokenStore := inboxtest.NewFaulty()
	brokenStore.ListFunc = func(context.Context, string, int64, int) ([]inbox.Entry, error) { return nil, down }
	brokenStore.GetFunc = func(context.Context, string) (inbox.Stored, error) { return inbox.Stored{}, down }
	brokenPub := gatewaytest.Failing(down)
	// A burst of 1, spent by the scenario's warm-up request.
	limited := options{rate: ratelimit.Options{PerSecond: 0.001, Burst: 1}}
	spend := func(o options, r req) scenario {
		o.store = store
		return scenario{opts: o, req: r, warmup: 1}
	}
	ok := options{store: store}
	post := func(body string) req { return req{method: "POST", path: "/v1/messages", token: alice, body: body} }
	upCheck := map[string]health.Check{"pubsub": func(context.Context) error { return nil }}
	downCheck := map[string]health.Check{"pubsub": func(context.Context) error { return down }}

	sc := map[string]scenario{
		"POST /v1/messages 202": {opts: ok, req: post(okBody)},
		"POST /v1/messages 400": {opts: ok, req: post(`{"to":[]}`)},
		"POST /v1/messages 401": {opts: ok, req: req{method: "POST", path: "/v1/messages", body: okBody}},
		"POST /v1/messages 413": {opts: options{maxBody: 1024}, req: post(`{"to":["bob"],"payload":"` + strings.Repeat("x", 2048) + `"}`)},
		"POST /v1/messages 415": {opts: ok, req: req{method: "POST", path: "/v1/messages", token: alice, body: okBody, ctype: "text/plain"}},
		"POST /v1/messages 429": spend(limited, post(okBody)),
		"POST /v1/messages 503": {opts: options{pub: brokenPub}, req: post(okBody)},

		"GET /v1/messages 200": {opts: ok, req: req{path: "/v1/messages?limit=2", token: alice}},
		"GET /v1/messages 400": {opts: ok, req: req{path: "/v1/messages?cursor=bogus", token: alice}},
		"GET /v1/messages 401": {opts: ok, req: req{path: "/v1/messages"}},
		"GET /v1/messages 429": spend(limited, req{path: "/v1/messages", token: alice}),
		"GET /v1/messages 503": {opts: options{store: brokenStore}, req: req{path: "/v1/messages", token: alice}},

		"GET /v1/messages/{id} 200": {opts: ok, req: req{path: "/v1/messages/m1", token: alice}},
		"GET /v1/messages/{id} 401": {opts: ok, req: req{path: "/v1/messages/m1", token: "expired.or.bogus"}},
		"GET /v1/messages/{id} 404": {opts: ok, req: req{path: "/v1/messages/m2", token: alice}},
		"GET /v1/messages/{id} 429": spend(limited, req{path: "/v1/messages/m1", token: alice}),
		"GET /v1/messages/{id} 503": {opts: options{store: brokenStore}, req: req{path: "/v1/messages/m1", token: alice}},

		"GET /v1/openapi.yaml 200": {opts: ok, req: req{path: "/v1/openapi.yaml"}},
		"GET /healthz 200":         {opts: ok, req: req{path: "/healthz"}},
		"GET /readyz 200":          {opts: options{ready: upCheck}, req: req{path: "/readyz"}},
		"GET /readyz 503":          {opts: options{ready: downCheck}, req: req{path: "/readyz"}},
		"GET /metrics 200":         {opts: ok, req: req{path: "/metrics"}},
	}
	return sc
}

// validator checks responses against the document's schemas.
type validator struct{ spec map[string]any }

// resolve follows a local "$ref".
func (v *validator) resolve(n any) map[string]any {
	m, _ := n.(map[string]any)
	for m != nil && m["$ref"] != nil {
		var cur any = v.spec
		for _, part := range strings.Split(strings.TrimPrefix(m["$ref"].(string), "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		m, _ = cur.(map[string]any)
	}
	return m
}

func (v *validator) checkResponse(t *testing.T, doc map[string]any, got resp) {
	t.Helper()
	for name := range asMap(doc["headers"]) {
		if got.header.Get(name) == "" {
			t.Errorf("documented header %s missing", name)
		}
	}
	content := asMap(doc["content"])
	if len(content) == 0 {
		return
	}
	mt, _, err := mime.ParseMediaType(got.header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", got.header.Get("Content-Type"), err)
	}
	media, ok := content[mt]
	if !ok {
		t.Fatalf("Content-Type %s not documented (documented: %v)", mt, keys(content))
	}
	schema := v.resolve(asMap(media)["schema"])
	if !strings.HasSuffix(mt, "json") {
		if len(got.body) == 0 {
			t.Error("empty body")
		}
		return
	}
	var body any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	for _, problem := range v.validate(schema, body, "$") {
		t.Error(problem)
	}
}

// validate returns where value breaks schema (the subset of JSON Schema
// the document uses).
func (v *validator) validate(schema map[string]any, value any, at string) []string {
	schema = v.resolve(schema)
	if len(schema) == 0 {
		return nil // any value
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	schema = v.flatten(schema)
	if enum := asSlice(schema["enum"]); enum != nil && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(value) }) {
		fail("%v not in %v", value, enum)
	}
	switch schema["type"] {
	case "object":
		obj, ok := value.(map[string]any)
		if !ok {
			fail("want object, got %T", value)
			return errs
		}
		props := asMap(schema["properties"])
		for _, r := range asSlice(schema["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				fail("required property %q missing", r)
			}
		}
		for k, val := range obj {
			if ps, ok := props[k]; ok {
				errs = append(errs, v.validate(asMap(ps), val, at+"."+k)...)
			} else if ap, ok := schema["additionalProperties"]; ok {
				if b, isBool := ap.(bool); isBool && !b {
					fail("undocumented property %q", k)
				} else if !isBool {
					errs = append(errs, v.validate(asMap(ap), val, at+"."+k)...)
				}
			} else {
				// Responses are documented exactly: an extra field is drift.
				fail("undocumented property %q", k)
			}
		}
	case "array":
		arr, ok := value.([]any)
		if !ok {
			fail("want array, got %T", value)
			return errs
		}
		for i, item := range arr {
			errs = append(errs, v.validate(asMap(schema["items"]), item, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		s, ok := value.(string)
		if !ok {
			fail("want string, got %T", value)
			return errs
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				fail("not a date-time: %q", s)
			}
		}
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(s) {
			fail("%q does not match %s", s, p)
		}
	case "integer":
		if f, ok := value.(float64); !ok || f != float64(int64(f)) {
			fail("want integer, got %v", value)
		}
	case "number":
		if _, ok := value.(float64); !ok {
			fail("want number, got %T", value)
		}
	case "boolean":
		if _, ok := value.(bool); !ok {
			fail("want boolean, got %T", value)
		}
	}
	return errs
}

// flatten merges allOf members into one schema (properties, required,
// type), which is how the document composes objects.
func (v *validator) flatten(schema map[string]any) map[string]any {
	all := asSlice(schema["allOf"])
	if all == nil {
		return schema
	}
	out := map[string]any{"type": "object"}
	props := map[string]any{}
	required := asSlice(schema["required"])
	for k, p := range asMap(schema["properties"]) {
		props[k] = p
	}
	for _, part := range all {
		m := v.flatten(v.resolve(asMap(part)))
		for k, p := range asMap(m["properties"]) {
			props[k] = p
		}
		required = append(required, asSlice(m["required"])...)
	}
	out["properties"], out["required"] = props, required
	return out
}

func asMap(n any) map[string]any { m, _ := n.(map[string]any); return m }
func asSlice(n any) []any        { s, _ := n.([]any); return s }
func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestValidatorCatchesDrift proves the contract test has teeth: bodies that
// drift from the document in each way it checks are reported.
func TestValidatorCatchesDrift(t *testing.T) {
	var spec map[string]any
	if err := yaml.Unmarshal(openapi.Spec, &spec); err != nil {
		t.Fatal(err)
	}
	v := &validator{spec: spec}
	view := v.resolve(map[string]any{"$ref": "#/components/schemas/MessageView"})
	page := v.resolve(map[string]any{"$ref": "#/components/schemas/InboxPage"})
	msg := map[string]any{"id": "m1", "from": "a", "to": []any{"b"}, "to_count": 1.0, "payload": 1, "content_type": "x", "sent_at": "2026-01-01T00:00:00Z"}
	good := map[string]any{"message": msg, "state": "stored", "delivered_to": []any{}, "delivered_count": 0.0}
	if errs := v.validate(view, good, "$"); len(errs) != 0 {
		t.Fatalf("valid body refused: %v", errs)
	}
	entry := map[string]any{"cursor": "c"}
	for k, val := range msg {
		entry[k] = val
	}
	if errs := v.validate(page, map[string]any{"messages": []any{entry}, "next_cursor": "c"}, "$"); len(errs) != 0 {
		t.Fatalf("valid page refused: %v", errs)
	}
	for name, body := range map[string]any{
		"missing required":     map[string]any{"message": msg, "state": "stored"},
		"undocumented field":   map[string]any{"message": msg, "state": "stored", "delivered_to": []any{}, "extra": 1},
		"enum violated":        map[string]any{"message": msg, "state": "accepted", "delivered_to": []any{}},
		"wrong type":           map[string]any{"message": msg, "state": "stored", "delivered_to": "bob"},
		"bad date-time":        map[string]any{"message": map[string]any{"id": "m1", "from": "a", "to": []any{"b"}, "payload": 1, "content_type": "x", "sent_at": "yesterday"}, "state": "stored", "delivered_to": []any{}},
		"bad user id":          map[string]any{"message": msg, "state": "stored", "delivered_to": []any{"a/b"}},
		"entry without cursor": nil,
	} {
		schema := view
		if body == nil {
			schema, body = page, map[string]any{"messages": []any{msg}, "next_cursor": "c"}
		}
		if errs := v.validate(schema, body, "$"); len(errs) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
}
