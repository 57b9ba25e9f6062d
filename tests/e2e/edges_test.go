package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// resumingClient is what a browser does: one session at a time, and on loss
// it reconnects (here: to the edge given) with the cursor of the last
// message it saw. It accumulates every message frame of every session.
type resumingClient struct {
	t      *testing.T
	token  string
	frames []harness.Frame
	cursor string
	cur    *harness.WSClient
}

func (r *resumingClient) connect(ctx context.Context, addr string) {
	r.t.Helper()
	if r.cur != nil {
		r.frames = append(r.frames, r.cur.Messages()...)
		if c := r.cur.LastCursor(); c != "" {
			r.cursor = c
		}
		r.cur.Close()
	}
	r.cur = mustDial(r.t, ctx, addr, r.token, r.cursor)
	// Like the demo client, wait for the session's starting cursor before
	// relying on it.
	testenv.WaitFor(r.t, 30*time.Second, 10*time.Millisecond, func() error {
		if r.cur.LastCursor() == "" && r.cursor == "" {
			return errors.New("no synced frame with the session's starting cursor")
		}
		return nil
	})
}

func (r *resumingClient) all() []harness.Frame {
	return append(append([]harness.Frame{}, r.frames...), r.cur.Messages()...)
}

func (r *resumingClient) waitAll(n int, d time.Duration) {
	r.t.Helper()
	testenv.WaitFor(r.t, d, 20*time.Millisecond, func() error {
		all := r.all()
		if len(all) >= n {
			return nil
		}
		var got []string
		for _, f := range all {
			got = append(got, f.Message.ID[:6])
		}
		return fmt.Errorf("got %d of %d messages: %v", len(all), n, got)
	})
}

// TestEdgeKilled kills an edge with SIGKILL: its client reconnects to the
// other edge with its cursor and receives everything it missed, in order,
// exactly once; `courierctl sweep` then removes the dead pod's subscription.
func TestEdgeKilled(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bob := &resumingClient{t: t, token: c.Token("bob")}
	bob.connect(ctx, c.Edges[0].Addr)

	var ids []string
	send := func(n int) {
		for range n {
			res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, len(ids), "")
			if err != nil || res.Status != 202 {
				t.Fatalf("send: %v %+v", err, res)
			}
			ids = append(ids, res.ID)
		}
	}
	send(10)
	bob.waitAll(10, time.Minute)
	c.Edges[0].Kill(t)
	send(10) // while bob is disconnected
	bob.connect(ctx, c.Edges[1].Addr)
	send(10)
	bob.waitAll(30, time.Minute)
	assertExactly(t, "bob", bob.all(), ids)

	// The dead pod's subscription is an orphan; sweep removes it, and keeps the live one.
	deleted := func(out string) bool {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "delete") && strings.Contains(line, "courier-edge-edge-a") {
				return true
			}
		}
		return false
	}
	var out string
	deadline := time.Now().Add(45 * time.Second)
	for {
		var err error
		out, err = c.CourierctlOutput("sweep", "--stale", "3s")
		if err != nil {
			t.Fatal(err)
		}
		if deleted(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sweep did not delete the orphan subscription of edge-a: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "delete") && strings.Contains(line, "courier-edge-edge-b") {
			t.Fatalf("sweep deleted the live edge's subscription: %s", out)
		}
	}
	// The live edge still delivers.
	send(1)
	bob.waitAll(31, time.Minute)
}

// TestRollingRestart restarts both edges gracefully, one after the other,
// while messages flow: every client reconnects and nothing is lost or
// duplicated.
func TestRollingRestart(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	clients := map[string]*resumingClient{}
	for i, u := range []string{"u0", "u1", "u2", "u3"} {
		clients[u] = &resumingClient{t: t, token: c.Token(u)}
		clients[u].connect(ctx, c.Edges[i%2].Addr)
	}
	var ids []string
	to := []string{"u0", "u1", "u2", "u3"}
	send := func(n int) {
		for range n {
			res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), to, len(ids), "")
			if err != nil || res.Status != 202 {
				t.Fatalf("send: %v %+v", err, res)
			}
			ids = append(ids, res.ID)
		}
	}
	send(5)
	for i := range 2 {
		edge, other := c.Edges[i], c.Edges[1-i]
		if err := edge.Stop(t, 30*time.Second); err != nil {
			t.Fatalf("%s exited with %v after SIGTERM", edge.Name, err)
		}
		send(5)
		for _, cl := range clients {
			if !sessionOn(cl, edge) {
				continue
			}
			select {
			case <-cl.cur.Closed():
			case <-time.After(10 * time.Second):
				t.Fatalf("a session on %s survived its SIGTERM", edge.Name)
			}
			if got := cl.cur.CloseStatus(); got != websocket.StatusGoingAway {
				t.Fatalf("session closed with %d, want 1001 going away (%v)", got, cl.cur.Err())
			}
			cl.connect(ctx, other.Addr)
		}
		edge.Start(t)
		edge.WaitReady(t, time.Minute)
		send(5)
	}
	var short []string
	for _, id := range ids {
		short = append(short, id[:6])
	}
	t.Logf("sent %v", short)
	for u, cl := range clients {
		cl.waitAll(len(ids), time.Minute)
		assertExactly(t, u, cl.all(), ids)
	}
}

// sessionOn reports whether the client's current session is on edge: only
// sessions on a stopped edge are closed.
func sessionOn(cl *resumingClient, edge *harness.Process) bool {
	return cl.cur.Addr == edge.Addr
}
