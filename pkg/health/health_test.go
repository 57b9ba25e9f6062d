package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestReady(t *testing.T) {
	ok := func(context.Context) error { return nil }
	bad := func(context.Context) error { return errors.New("down") }
	slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tc := range []struct {
		name   string
		checks map[string]Check
		code   int
	}{
		{"all ok", map[string]Check{"a": ok, "b": ok}, 200},
		{"one down", map[string]Check{"a": ok, "b": bad}, 503},
		{"one hangs", map[string]Check{"a": ok, "b": slow}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Ready(tc.checks, 50*time.Millisecond)(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tc.code {
				t.Fatalf("code %d, want %d", rec.Code, tc.code)
			}
			var body struct {
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Checks) != len(tc.checks) {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
		})
	}
}
