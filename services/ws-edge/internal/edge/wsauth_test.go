package edge_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/auth/authtest"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
	"github.com/courierhq/courier/services/ws-edge/internal/wsauth"
)

// dialBare opens /v1/ws with no credential at all (first-frame auth).
func dialBare(t *testing.T, te *testEdge, cursor string) *wsClient {
	t.Helper()
	c, resp, err := tryDial(t, te, "", dialOpts{cursor: cursor, noRead: true})
	if err != nil {
		t.Fatalf("dial without credential: %v %v", err, resp)
	}
	return c
}

func (c *wsClient) send(t *testing.T, typ websocket.MessageType, s string) {
	t.Helper()
	if err := c.conn.Write(testenv.Context(t, 5*time.Second), typ, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// wantClose waits for the server's close and checks its code and reason.
func (c *wsClient) wantClose(t *testing.T, code websocket.StatusCode, reason string) {
	t.Helper()
	err := c.closed(t)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || ce.Reason != reason {
		t.Fatalf("closed with %v, want %d %q", err, code, reason)
	}
}

// sum adds up every series of a metric.
func (te *testEdge) sum(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := te.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

// TestFirstFrameAuth: a client that opens /v1/ws without a credential
// sends its token in its first frame; until then nothing is registered and
// nothing is read from the store, and a late, wrong or refused first frame
// closes the connection with 1008 and a reason.
func TestFirstFrameAuth(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.AuthTimeout = 300 * time.Millisecond })

	t.Run("no frame: 1008 after WS_AUTH_TIMEOUT", func(t *testing.T) {
		reads := a.sum(t, "courier_ws_edge_inbox_reads_total")
		c := dialBare(t, a, inbox.EncodeCursor(0))
		c.startReading()
		c.wantClose(t, websocket.StatusPolicyViolation, wsauth.ReasonTimeout)
		if got := a.sum(t, "courier_ws_edge_inbox_reads_total"); got != reads {
			t.Errorf("inbox reads went from %v to %v before any auth", reads, got)
		}
	})
	for name, tc := range map[string]struct {
		typ    websocket.MessageType
		frame  string
		reason string
	}{
		"bad token":       {websocket.MessageText, `{"type":"auth","token":"not.a.jwt"}`, wsauth.ReasonInvalidToken},
		"expired token":   {websocket.MessageText, `{"type":"auth","token":"` + mint(t, testSecret, "bob", -time.Hour) + `"}`, wsauth.ReasonInvalidToken},
		"no token":        {websocket.MessageText, `{"type":"auth"}`, wsauth.ReasonFrame},
		"ping first":      {websocket.MessageText, `{"type":"ping"}`, wsauth.ReasonFrame},
		"ack first":       {websocket.MessageText, `{"type":"ack","id":"m1"}`, wsauth.ReasonFrame},
		"not json":        {websocket.MessageText, `Bearer abc`, wsauth.ReasonFrame},
		"binary frame":    {websocket.MessageBinary, `{"type":"auth","token":"x"}`, wsauth.ReasonFrame},
		"two json values": {websocket.MessageText, `{"type":"auth","token":"a"}{}`, wsauth.ReasonFrame},
	} {
		t.Run(name, func(t *testing.T) {
			c := dialBare(t, a, "")
			c.startReading()
			c.send(t, tc.typ, tc.frame)
			c.wantClose(t, websocket.StatusPolicyViolation, tc.reason)
		})
	}

	t.Run("good token: register, replay from the cursor, go live", func(t *testing.T) {
		w.publish(t, w.commit(t, "m1", "alice", "", "bob"))
		w.publish(t, w.commit(t, "m2", "alice", "", "bob"))
		c := dialBare(t, a, inbox.EncodeCursor(1))
		c.startReading()
		c.send(t, websocket.MessageText, `{"type":"auth","token":"`+token(t, "bob")+`"}`)
		c.expect(t, "hello", "message:m2", "synced")
		if len(a.Sessions("bob")) != 1 {
			t.Fatalf("bob's session is not registered")
		}
		w.publish(t, w.commit(t, "m3", "alice", "", "bob"))
		c.expect(t, "message:m3")
		// The session's frames work as before.
		c.send(t, websocket.MessageText, `{"type":"ping"}`)
		c.expect(t, "pong")
	})

	for reason, want := range map[string]float64{"auth_timeout": 1, "unauthorized": 8} {
		if got := a.counter(t, "courier_ws_edge_rejected_total", "reason", reason); got != want {
			t.Errorf("rejected{%s} = %v, want %v", reason, got, want)
		}
	}
}

// TestFirstFrameAuthBacklog: a connection waiting for its auth frame
// holds no session and reads nothing; such connections are bounded
// (WS_MAX_UNAUTHENTICATED): beyond it the upgrade is refused, and a slot is
// free again once one authenticates.
func TestFirstFrameAuthBacklog(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.MaxUnauthenticated, c.AuthTimeout = 1, time.Minute })
	first := dialBare(t, a, inbox.EncodeCursor(0))
	first.startReading()
	if _, resp, err := tryDial(t, a, "", dialOpts{}); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second unauthenticated connection: %v %v, want 503", err, resp)
	}
	// The first is upgraded (the 503 came after it took the only slot).
	if got := a.sum(t, "courier_ws_edge_sessions"); got != 0 {
		t.Errorf("sessions = %v while unauthenticated", got)
	}
	if got := a.sum(t, "courier_ws_edge_inbox_reads_total"); got != 0 {
		t.Errorf("%v inbox reads before any auth", got)
	}
	first.send(t, websocket.MessageText, `{"type":"auth","token":"`+token(t, "bob")+`"}`)
	first.expect(t, "hello", "synced")
	second := dialBare(t, a, "")
	second.startReading()
	second.send(t, websocket.MessageText, `{"type":"auth","token":"`+token(t, "carol")+`"}`)
	second.expect(t, "hello", "synced")
}

// TestJWKSIssuerAndAudienceAtTheEdge: with the production verifier, a token
// another tenant of the identity provider minted (wrong or missing iss or
// aud) is refused at the edge, in the first frame (1008) and in the
// Authorization header (401); the configured tenant's token opens a
// session.
func TestJWKSIssuerAndAudienceAtTheEdge(t *testing.T) {
	idp := authtest.New(t)
	v, err := auth.NewFromConfig(context.Background(), auth.Config{JWKSURL: idp.URL, Issuer: authtest.Issuer, Audience: authtest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(_ *edge.Config, d *edge.Deps) { d.Verifier = v })
	good, bad := idp.Cases(t, "victim")
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			c := dialBare(t, a, "")
			c.startReading()
			c.send(t, websocket.MessageText, `{"type":"auth","token":"`+tok+`"}`)
			c.wantClose(t, websocket.StatusPolicyViolation, wsauth.ReasonInvalidToken)
			_, resp, err := tryDial(t, a, "", dialOpts{header: http.Header{"Authorization": {"Bearer " + tok}}})
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("header: %v %v, want 401", err, resp)
			}
		})
	}
	c := dialBare(t, a, "")
	c.startReading()
	c.send(t, websocket.MessageText, `{"type":"auth","token":"`+good+`"}`)
	c.expect(t, "hello", "synced")
	h := dial(t, a, "", dialOpts{header: http.Header{"Authorization": {"Bearer " + good}}})
	h.expect(t, "hello", "synced")
	if n := len(a.Sessions("victim")); n != 2 {
		t.Fatalf("victim has %d sessions, want 2", n)
	}
}

func mint(t *testing.T, secret []byte, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(secret, user, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestFrameSentWithTheHandshake: a client may send its first frame in the
// same packet as the upgrade request (or right after the 101, before the
// server has taken the connection over). Those bytes sit in the HTTP
// server's reader; the edge's small-buffer swap used to drop them, so the
// first frame lost its first bytes and the session died with 1002.
func TestFrameSentWithTheHandshake(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a")
	payload := []byte(`{"type":"auth","token":"` + token(t, "bob") + `"}`)
	mask := []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | 126, byte(len(payload) >> 8), byte(len(payload))}
	frame = append(frame, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := "GET /v1/ws HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// The server's first frame: unmasked, text, the hello.
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	n := int(head[1] & 0x7f)
	if n == 126 {
		ext := make([]byte, 2)
		if _, err := io.ReadFull(br, ext); err != nil {
			t.Fatal(err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 || !strings.Contains(string(body), `"type":"hello"`) {
		t.Fatalf("first server frame %x %q, want the hello", head, body)
	}
}
