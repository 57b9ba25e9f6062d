package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/tests/e2e/harness"
	"github.com/courierhq/courier/tests/e2e/otlprecv"
)

// TestReplayedMessageTraceLinksOriginal dead-letters a valid message (the
// worker runs with a payload limit below the gateway's: a misconfiguration),
// fixes the worker, replays the dead letter with courierctl, and checks that
// the message is delivered and that its new trace links to the original one
// and runs through worker and edge to the socket write.
func TestReplayedMessageTraceLinksOriginal(t *testing.T) {
	recv, err := otlprecv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Stop()
	c := env.NewCluster(t, harness.Options{Edges: 1, OTLPEndpoint: recv.Addr, WorkerEnv: []string{"WORKER_MAX_PAYLOAD_BYTES=100"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bob := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")

	res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, strings.Repeat("x", 500), "")
	if err != nil || res.Status != 202 {
		t.Fatalf("send: %v %+v", err, res)
	}
	// The original trace: the gateway's server span carrying the message id.
	var original string
	testenv.Eventually(t, time.Minute, "the dead letter and the original trace", func() bool {
		for _, s := range recv.Spans() {
			if s.Service == "api-gateway" && s.Attrs["courier.message.id"] == res.ID {
				original = s.TraceID
			}
		}
		return original != "" && len(deadLetters(t, c, 2*time.Second)) == 1
	})

	// Fix the worker's configuration and replay.
	if err := c.Worker.Stop(t, 30*time.Second); err != nil {
		t.Fatalf("worker exit: %v", err)
	}
	c.Worker.Env = append(c.Worker.Env, "WORKER_MAX_PAYLOAD_BYTES=262144")
	c.Worker.Start(t)
	c.Worker.WaitReady(t, time.Minute)
	if out, err := c.CourierctlOutput("dlq", "replay", "--all"); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if err := bob.WaitMessages(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := bob.Messages()[0].Message.ID; got != res.ID {
		t.Fatalf("delivered %s, want %s", got, res.ID)
	}

	// The replay's trace: a span linked to the original trace, and in the same
	// new trace the worker's processing and the edge's socket write.
	testenv.Eventually(t, 30*time.Second, "a replay trace linked to the original, reaching the socket write", func() bool {
		spans := recv.Spans()
		for _, s := range spans {
			linked := false
			for _, l := range s.Links {
				linked = linked || l.TraceID == original
			}
			if !linked || s.TraceID == original {
				continue
			}
			var worker, write bool
			for _, o := range spans {
				if o.TraceID != s.TraceID {
					continue
				}
				worker = worker || (o.Service == "pipeline-worker" && strings.HasPrefix(o.Name, "process courier-ingress"))
				write = write || (o.Service == "ws-edge" && strings.HasPrefix(o.Name, "websocket write") && o.Attrs["courier.message.id"] == res.ID)
			}
			if worker && write {
				return true
			}
		}
		return false
	})
}
