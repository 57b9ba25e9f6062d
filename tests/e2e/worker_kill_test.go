package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestWorkerKilledMidStream kills the worker with SIGKILL while 2,000
// messages are in flight and restarts it: every accepted message ends up in
// its recipient's inbox exactly once.
//
// The killed worker's leases are not extended any more, so Pub/Sub
// redelivers its messages once their ack deadline passes (within
// WORKER_ACK_EXTENSION_STEP, or INGRESS_ACK_DEADLINE for a message it had
// not extended yet) and the new worker stores them; the store's idempotence
// turns the ones it had already stored into duplicates that write nothing.
// This relies on the worker pulling with unary Pull: the emulator never
// redelivers what a StreamingPull consumer held when it was killed
// (docs/emulators.md).
func TestWorkerKilledMidStream(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const n, senders, recipients = 2000, 10, 20

	// Every recipient holds a live session, so delivery is checked as well
	// as storage.
	sessions := map[string]*harness.WSClient{}
	for i := range recipients {
		user := fmt.Sprintf("r%d", i)
		ws, _, err := harness.Dial(ctx, c.Edges[0].Addr, c.Token(user), "")
		if err != nil {
			t.Fatalf("dial %s: %v", user, err)
		}
		t.Cleanup(ws.Close)
		sessions[user] = ws
	}

	s := newSent()
	sendLoad(t, ctx, c, s, n, senders, recipients, 16, nil)
	if got := s.count(); got != n {
		t.Fatalf("%d of %d messages accepted", got, n)
	}
	// All 2,000 are accepted; kill the worker once it is partway through
	// them, with most still in Pub/Sub or in its hands.
	var processed float64
	for deadline := time.Now().Add(time.Minute); processed < 100; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker processed only %v messages within a minute", processed)
		}
		processed = metricSum(c.Worker.AdminAddr, "courier_pipeline_worker_messages_processed_total{")
	}
	if processed >= n {
		t.Fatalf("the worker had processed all %d messages before the kill; the scenario did not happen", n)
	}
	c.Worker.Kill(t)
	killedAt := time.Now()
	t.Logf("SIGKILL after %v of %d messages were processed", processed, n)
	c.Worker.Start(t)

	// Storage: every accepted message is in its recipient's inbox exactly once.
	waitInboxes(t, ctx, c, s, 5*time.Minute)
	t.Logf("every inbox complete %s after the kill; the new worker found %v already stored (redelivered from the killed one) and published their deliveries again",
		time.Since(killedAt).Round(time.Second),
		metricSum(c.Worker.AdminAddr, `courier_pipeline_worker_messages_processed_total{result="duplicate"}`))

	// Delivery: every accepted message reached its recipient's session; a
	// message whose delivery is published twice (stored by the killed
	// worker, then redelivered to the new one, which publishes it again)
	// carries the same id and position, and the edge sends a position once.
	dups := 0
	for user, ws := range sessions {
		want := s.byTo[user]
		if err := ws.WaitMessages(len(want), 2*time.Minute); err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		got := map[string]int{}
		for _, f := range ws.Messages() {
			got[f.Message.ID]++
		}
		for _, id := range want {
			if got[id] == 0 {
				t.Fatalf("%s never received accepted message %s over its session", user, id)
			}
			dups += got[id] - 1
			delete(got, id)
		}
		if len(got) != 0 {
			t.Fatalf("%s received messages it was never sent: %v", user, got)
		}
	}
	t.Logf("%d duplicate deliveries over WebSocket (same id)", dups)
}

// metricSum sums the /metrics samples of the process at addr whose line
// starts with prefix; 0 while it does not answer.
func metricSum(addr, prefix string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			total += v
		}
	}
	return total
}
