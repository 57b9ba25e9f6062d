package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestExpiredCursorAnswersCursorExpired runs the stack with a short
// INBOX_RETENTION (the worker stamps expire_at, the edge and the gateway
// refuse cursors behind it) and resumes from a cursor whose next entry has
// passed retention: the WebSocket closes 4410 with a reason starting
// `cursor_expired`, and the same cursor on GET /v1/messages answers 410
// `cursor_expired`, instead of a silent gap. Before the entry expires, the
// same cursor resumes normally (so the 410 and the 4410 are retention's,
// not a bad cursor's).
func TestExpiredCursorAnswersCursorExpired(t *testing.T) {
	const retention = 6 * time.Second
	c := env.NewCluster(t, harness.Options{Edges: 1, ExtraEnv: []string{"INBOX_RETENTION=" + retention.String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var ids []string
	for i := range 2 {
		r, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, map[string]any{"n": i}, "")
		if err != nil || r.Status != http.StatusAccepted {
			t.Fatalf("send %d: %+v %v", i, r, err)
		}
		ids = append(ids, r.ID)
	}
	var entries []harness.InboxEntry
	testenv.Eventually(t, 30*time.Second, "both messages in bob's inbox", func() bool {
		var err error
		entries, err = harness.Inbox(ctx, c.GatewayURL(), c.Token("bob"), "")
		return err == nil && len(entries) == 2
	})
	cursor := entries[0].Cursor // the second message follows it

	inboxAfter := func() (int, []byte) {
		status, body, err := harness.Get(ctx, c.GatewayURL()+"/v1/messages?"+url.Values{"cursor": {cursor}}.Encode(), c.Token("bob"))
		if err != nil {
			t.Fatal(err)
		}
		return status, body
	}
	// Within retention the cursor is good: the second message follows it.
	// (The entries were written moments ago; 6 s is far above that here.)
	if status, body := inboxAfter(); status != http.StatusOK || !strings.Contains(string(body), ids[1]) {
		t.Fatalf("within retention: GET /v1/messages?cursor= = %d %s, want 200 with %s", status, body, ids[1])
	}

	// Past retention: 410 cursor_expired on REST (waited for, not slept).
	var status int
	var body []byte
	testenv.Eventually(t, 30*time.Second, "REST answers 410 once the entry passed retention", func() bool {
		status, body = inboxAfter()
		return status == http.StatusGone
	})
	var e struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code != "cursor_expired" {
		t.Fatalf("GET /v1/messages?cursor= past retention = %d %s, want code cursor_expired", status, body)
	}

	// The same cursor on the WebSocket: hello, then close 4410.
	s, resp, err := harness.Dial(ctx, c.Edges[0].Addr, c.Token("bob"), cursor)
	if err != nil {
		t.Fatalf("dial with the expired cursor: %v (%v)", err, resp)
	}
	select {
	case <-s.Closed():
	case <-time.After(30 * time.Second):
		t.Fatal("the session resumed behind retention stayed open")
	}
	var ce websocket.CloseError
	if !errors.As(s.Err(), &ce) || ce.Code != 4410 || !strings.HasPrefix(ce.Reason, "cursor_expired") {
		t.Fatalf("resume behind retention ended with %v, want close 4410 with a reason starting cursor_expired", s.Err())
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("the expired resume wrote %d messages before closing", n)
	}

	// The client's way on: the newest page (no cursor) and a live session.
	if _, err := harness.Inbox(ctx, c.GatewayURL(), c.Token("bob"), ""); err != nil {
		t.Fatalf("the newest page after the 410: %v", err)
	}
	live := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")
	if _, err := live.WaitFrames("synced", 1, 30*time.Second); err != nil {
		t.Fatalf("a live session after the 4410: %v", err)
	}
	live.Close()
}
