package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestSignalsCrossPodsAtMostOnceAndAreNeverStored: a signal sent on a
// WebSocket on one edge, and one sent with POST /v1/signals, reach every
// session of the recipient on both edges once each, reach nobody else,
// and never appear in the inbox; an over-size signal and signals over the
// session's or the user's rate are answered with their codes.
func TestSignalsCrossPodsAtMostOnceAndAreNeverStored(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 2,
		EdgeEnv:    []string{"WS_SIGNAL_RATE=1", "WS_SIGNAL_BURST=3"},
		GatewayEnv: []string{"SIGNAL_RATE=1", "SIGNAL_BURST=2"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := mustDial(t, ctx, c.Edges[0].Addr, c.Token("alice"), "")
	bobA := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")
	bobB := mustDial(t, ctx, c.Edges[1].Addr, c.Token("bob"), "")
	carolB := mustDial(t, ctx, c.Edges[1].Addr, c.Token("carol"), "")
	waitSubscribed(t, c)
	for _, s := range []*harness.WSClient{alice, bobA, bobB, carolB} {
		if _, err := s.WaitFrames("synced", 1, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	if err := alice.Write(ctx, `{"type":"signal","to":["bob"],"kind":"typing","data":{"via":"ws"}}`); err != nil {
		t.Fatal(err)
	}
	status, body, err := harness.PostJSON(ctx, c.GatewayURL(), "/v1/signals", c.Token("alice"), `{"to":["bob"],"kind":"typing","data":{"via":"rest"}}`)
	if err != nil || status != 202 {
		t.Fatalf("POST /v1/signals: %d %s %v", status, body, err)
	}
	for name, s := range map[string]*harness.WSClient{"bob@a": bobA, "bob@b": bobB} {
		got, err := s.WaitFrames("signal", 2, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		vias := map[string]bool{}
		for _, f := range got {
			if f["from"] != "alice" || f["kind"] != "typing" || f["sent_at"] == nil {
				t.Fatalf("%s: frame %v", name, f)
			}
			vias[f["data"].(map[string]any)["via"].(string)] = true
		}
		if !vias["ws"] || !vias["rest"] {
			t.Fatalf("%s: signals %v", name, got)
		}
	}

	// A message after the signals: once it has arrived everywhere, each
	// session has seen all it will of the signals (same topic, same pods).
	res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob", "carol"}, map[string]any{"text": "after"}, "")
	if err != nil || res.Status != 202 {
		t.Fatalf("send: %v %+v", err, res)
	}
	for name, s := range map[string]*harness.WSClient{"bob@a": bobA, "bob@b": bobB, "carol@b": carolB} {
		if err := s.WaitMessages(1, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if n := len(bobA.Raw("signal")) + len(bobB.Raw("signal")); n != 4 {
		t.Errorf("bob's sessions got %d signal frames, want 2 each", n)
	}
	if n := len(carolB.Raw("signal")) + len(alice.Raw("signal")); n != 0 {
		t.Errorf("non-recipients got %d signal frames", n)
	}
	entries, err := harness.Inbox(ctx, c.GatewayURL(), c.Token("bob"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].ID != res.ID {
		t.Fatalf("bob's inbox holds %d entries (%+v), want only the message", len(entries), entries)
	}

	// Refusals with their codes.
	if err := alice.Write(ctx, `{"type":"signal","to":["bob"],"kind":"typing","data":"`+strings.Repeat("x", 1100)+`"}`); err != nil {
		t.Fatal(err)
	}
	waitError(t, alice, "signal_too_large")
	for range 8 {
		if err := alice.Write(ctx, `{"type":"signal","to":["dave"],"kind":"typing"}`); err != nil {
			t.Fatal(err)
		}
	}
	waitError(t, alice, "signal_rate_limited")
	status, body, err = harness.PostJSON(ctx, c.GatewayURL(), "/v1/signals", c.Token("alice"), `{"to":["bob"],"kind":"typing","data":"`+strings.Repeat("x", 1100)+`"}`)
	if err != nil || status != 413 || !strings.Contains(string(body), `"signal_too_large"`) {
		t.Fatalf("over-size POST: %d %s %v", status, body, err)
	}
	limited := false
	for range 6 {
		status, body, err = harness.PostJSON(ctx, c.GatewayURL(), "/v1/signals", c.Token("alice"), `{"to":["dave"],"kind":"typing"}`)
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Code string }
		_ = json.Unmarshal(body, &p)
		if status == 429 && p.Code == "signal_rate_limited" {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatalf("POST /v1/signals never refused over SIGNAL_RATE: last %d %s", status, body)
	}
}

// waitError waits for an error frame with code on s.
func waitError(t *testing.T, s *harness.WSClient, code string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range s.Raw("error") {
			if f["code"] == code {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no error frame %q within 20s; errors: %v", code, s.Raw("error"))
}
