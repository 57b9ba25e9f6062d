package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestSecurity refuses every forged, expired or misused credential and
// oversized input, on REST and on WebSocket.
func TestSecurity(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	alice, bob := c.Token("alice"), c.Token("bob")
	badSig, _ := auth.Mint([]byte("not-the-secret-0123456789abcdef"), "alice", time.Hour)
	expired, _ := auth.Mint(harness.Secret, "alice", -time.Hour)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)

	for name, tok := range map[string]string{"no token": "", "bad signature": badSig, "expired": expired, "alg none": none, "garbage": "x.y.z"} {
		t.Run("rest "+name, func(t *testing.T) {
			res, err := harness.Send(ctx, c.GatewayURL(), tok, []string{"bob"}, "hi", "")
			if err != nil || res.Status != 401 || res.Code != "unauthenticated" {
				t.Fatalf("POST: %v %+v", err, res)
			}
			st, _, err := harness.Get(ctx, c.GatewayURL()+"/v1/messages", tok)
			if err != nil || st != 401 {
				t.Fatalf("GET: %v %d", err, st)
			}
		})
		t.Run("ws "+name, func(t *testing.T) {
			_, resp, err := harness.Dial(ctx, c.Edges[0].Addr, tok, "")
			if err == nil || resp == nil || resp.StatusCode != 401 {
				st := 0
				if resp != nil {
					st = resp.StatusCode
				}
				t.Fatalf("dial: err=%v status=%d", err, st)
			}
		})
		t.Run("ws first frame "+name, func(t *testing.T) {
			wantFirstFrameRefused(t, ctx, c.Edges[0].Addr, tok)
		})
	}

	// bob's message to carol: alice can read neither the message nor bob's inbox.
	carol := mustDial(t, ctx, c.Edges[0].Addr, c.Token("carol"), "")
	res, err := harness.Send(ctx, c.GatewayURL(), bob, []string{"carol"}, "secret", "")
	if err != nil || res.Status != 202 {
		t.Fatalf("send: %v %+v", err, res)
	}
	if err := carol.WaitMessages(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	carolCursor := carol.Messages()[0].Cursor
	st, body, _ := harness.Get(ctx, c.GatewayURL()+"/v1/messages/"+res.ID, alice)
	if st != 404 {
		t.Fatalf("alice read bob's message: %d %s", st, body)
	}
	st, _, _ = harness.Get(ctx, c.GatewayURL()+"/v1/messages/"+res.ID, c.Token("carol"))
	if st != 200 {
		t.Fatalf("carol cannot read her message: %d", st)
	}
	// carol's cursor used by alice reads alice's (empty) inbox, never carol's.
	entries, err := harness.Inbox(ctx, c.GatewayURL(), alice, "")
	if err != nil || len(entries) != 0 {
		t.Fatalf("alice's inbox: %v %v", entries, err)
	}
	st, body, _ = harness.Get(ctx, c.GatewayURL()+"/v1/messages?cursor="+carolCursor, alice)
	if st == 200 && strings.Contains(string(body), res.ID) {
		t.Fatalf("alice read carol's inbox through carol's cursor: %s", body)
	}
	// alice resuming a WebSocket from the start gets nothing of carol's.
	a := mustDial(t, ctx, c.Edges[0].Addr, alice, carolCursor)
	bobSession := mustDial(t, ctx, c.Edges[0].Addr, bob, "")
	res2, err := harness.Send(ctx, c.GatewayURL(), alice, []string{"bob"}, "marker", "")
	if err != nil || res2.Status != 202 {
		t.Fatalf("send marker: %v %+v", err, res2)
	}
	if err := bobSession.WaitMessages(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	// alice's only message is her own copy of the marker (the sender's
	// copy reaches her sessions live); nothing of carol's.
	if err := a.WaitMessages(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, m := range a.Messages() {
		if m.Message.ID != res2.ID || m.Message.From != "alice" {
			t.Fatalf("alice's session with carol's cursor received %v", a.Messages())
		}
	}

	// A 10 MB body is refused with 413 before it is read whole.
	big := bytes.Repeat([]byte("a"), 10<<20)
	body10, _ := json.Marshal(map[string]any{"to": []string{"bob"}, "payload": string(big)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.GatewayURL()+"/v1/messages", bytes.NewReader(body10))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("10 MB body: %d", resp.StatusCode)
	}

	// A WebSocket frame over the read limit closes the session with 1009.
	s := mustDial(t, ctx, c.Edges[0].Addr, alice, "")
	_ = s.Conn.Write(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), 64<<10))
	select {
	case <-s.Closed():
	case <-time.After(30 * time.Second):
		t.Fatal("oversized frame did not close the session")
	}
	if got := s.CloseStatus(); got != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d, want 1009 (%v)", got, s.Err())
	}
}

// wantFirstFrameRefused opens a session without a credential, sends tok in
// the auth frame, and wants the edge to close with 1008.
func wantFirstFrameRefused(t *testing.T, ctx context.Context, edgeAddr, tok string) {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, "ws://"+edgeAddr+"/v1/ws", nil)
	if err != nil {
		t.Fatalf("dial without a credential: %v", err)
	}
	defer conn.CloseNow()
	frame, _ := json.Marshal(map[string]string{"type": "auth", "token": tok})
	if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
		t.Fatal(err)
	}
	_, b, err := conn.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("auth frame with a bad token: frame %q err %v, want close 1008", b, err)
	}
}
