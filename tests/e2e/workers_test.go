package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestThreeWorkersOneKilled runs three workers on the one ingress
// subscription while 40 senders each send 40 messages, one after another,
// to a hot recipient and to one of eleven others, so that every worker
// commits batches to the same inboxes as the others; every tenth send is
// repeated with its idempotency key (the same message published twice).
// One worker is SIGKILLed while it holds messages and is not restarted: its
// leases expire and the two others get its messages.
//
// Every inbox ends up with exactly the accepted messages, once each, at
// positions 1..n (the cursors), each sender's messages in the order sent.
func TestThreeWorkersOneKilled(t *testing.T) {
	// Small flow-control windows spread the load over the three workers.
	small := "WORKER_MAX_OUTSTANDING_MESSAGES=40"
	c := env.NewCluster(t, harness.Options{WorkerEnv: []string{small}})
	c.AddWorker(t, small)
	victim := c.AddWorker(t, small)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const senders, per, others = 40, 40, 11

	var mu sync.Mutex
	sentTo := map[string][]string{} // recipient → ids, each sender's in send order
	senderOf := map[string]string{}
	repeats := 0
	loadDone := make(chan struct{})
	errs := make(chan error, senders)
	go func() {
		defer close(loadDone)
		var wg sync.WaitGroup
		for s := range senders {
			wg.Go(func() {
				from := fmt.Sprintf("s%02d", s)
				tok := c.Token(from)
				for i := range per {
					to := []string{"hot", fmt.Sprintf("r%02d", (s+i)%others)}
					key := fmt.Sprintf("%s-%d", from, i)
					sends := 1
					if i%10 == 0 {
						sends = 2
					}
					var id string
					for n := range sends {
						got, err := sendRetrying(ctx, c, tok, to, key)
						if err != nil {
							errs <- fmt.Errorf("%s: %w", key, err)
							return
						}
						if n > 0 && got != id {
							errs <- fmt.Errorf("%s: a repeat with the same key got id %s, not %s", key, got, id)
							return
						}
						id = got
					}
					mu.Lock()
					senderOf[id] = from
					repeats += sends - 1
					for _, u := range to {
						sentTo[u] = append(sentTo[u], id)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}()

	<-loadDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	accepted := len(senderOf)

	// Kill the third worker while it holds messages, partway through.
	processed := func(p *harness.Process) float64 {
		return metricSum(p.AdminAddr, "courier_pipeline_worker_messages_processed_total{")
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		held, done := metricSum(victim.AdminAddr, "courier_pipeline_worker_messages_in_flight"), processed(victim)
		if held > 0 && done >= 50 {
			victim.Kill(t)
			t.Logf("SIGKILL to %s holding %v messages after it processed %v", victim.Name, held, done)
			break
		}
		if all := done + processed(c.Worker) + processed(c.Workers[0]); all >= float64(accepted) || time.Now().After(deadline) {
			t.Fatalf("%s processed %v of the %v processed before it held messages past 50; the scenario did not happen", victim.Name, done, all)
		}
	}
	killedAt := time.Now()

	for user, want := range sentTo {
		tok := c.Token(user)
		var entries []harness.InboxEntry
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
			var err error
			entries, err = harness.Inbox(ctx, c.GatewayURL(), tok, "")
			if err == nil && len(entries) >= len(want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("inbox of %s: %d of %d messages (err %v)", user, len(entries), len(want), err)
			}
		}
		if len(entries) != len(want) {
			t.Fatalf("inbox of %s holds %d messages, %d were accepted", user, len(entries), len(want))
		}
		seen := map[string]bool{}
		got := make([]string, len(entries))
		for i, e := range entries {
			pos, err := inbox.DecodeCursor(e.Cursor)
			if err != nil || pos != int64(i+1) {
				t.Fatalf("inbox of %s: entry %d (%s) at position %d (%v): not gap-free", user, i, e.ID, pos, err)
			}
			if seen[e.ID] {
				t.Fatalf("inbox of %s holds %s twice", user, e.ID)
			}
			seen[e.ID] = true
			got[i] = e.ID
		}
		for s := range senders {
			from := fmt.Sprintf("s%02d", s)
			mine := func(id string) bool { return senderOf[id] == from }
			if g, w := filter(got, mine), filter(want, mine); !slices.Equal(g, w) {
				t.Fatalf("inbox of %s, %s's messages: %v, sent %v", user, from, g, w)
			}
		}
	}
	t.Logf("%d messages (%d repeated sends) in %d inboxes, complete and in order %s after the kill; survivors processed %v as duplicates",
		len(senderOf), repeats, len(sentTo), time.Since(killedAt).Round(time.Second),
		metricSum(c.Worker.AdminAddr, `courier_pipeline_worker_messages_processed_total{result="duplicate"}`)+
			metricSum(c.Workers[0].AdminAddr, `courier_pipeline_worker_messages_processed_total{result="duplicate"}`))
}

// sendRetrying posts one message, retrying 503s with the same idempotency
// key (the documented client behaviour), and returns its id.
func sendRetrying(ctx context.Context, c *harness.Cluster, token string, to []string, key string) (string, error) {
	for attempt := 0; ; attempt++ {
		res, err := harness.Send(ctx, c.GatewayURL(), token, to, map[string]any{"k": key}, key)
		switch {
		case err == nil && res.Status == 202:
			return res.ID, nil
		case err == nil && res.Status != 503:
			return "", fmt.Errorf("%d %s", res.Status, res.Body)
		case ctx.Err() != nil:
			return "", ctx.Err()
		case attempt > 300:
			return "", fmt.Errorf("gave up: %v %+v", err, res)
		}
		time.Sleep(100 * time.Millisecond) // client retry backoff
	}
}

func filter(ids []string, keep func(string) bool) []string {
	var out []string
	for _, id := range ids {
		if keep(id) {
			out = append(out, id)
		}
	}
	return out
}
