package inbox_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// ops counts a committer's Firestore requests by kind.
type ops struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *ops) add(op string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[op]++
}

// take returns the counts so far and starts again from zero.
func (o *ops) take() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.n
	o.n = nil
	if n == nil {
		n = map[string]int{}
	}
	return n
}

// One batch costs one commit after one round of reads (each unknown head,
// and the messages); the next batch, with every head cached, costs that one
// commit and nothing else. (Positions: inboxtest's
// BatchTakesConsecutivePositions.)
func TestCommitterRequestsPerBatch(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, time.Minute)
	var o ops
	c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100, RoundTrip: o.add})

	inboxtest.NoErrors(t, c.Commit(ctx, []*courierv1.Envelope{
		inboxtest.Envelope("a1", "alice", "bob", "carol"), inboxtest.Envelope("b1", "bea", "bob"), inboxtest.Envelope("a2", "alice", "bob", "carol"),
	}))
	if got := o.take(); got[inbox.OpCommit] != 1 || got[inbox.OpReadHead] != 4 || got[inbox.OpGetMessages] != 1 { // bob, carol and the senders alice, bea (their copies)
		t.Fatalf("first batch, nothing cached: requests %v", got)
	}
	inboxtest.NoErrors(t, c.Commit(ctx, []*courierv1.Envelope{inboxtest.Envelope("b2", "bea", "bob", "carol")}))
	if got := o.take(); got[inbox.OpCommit] != 1 || len(got) != 1 {
		t.Fatalf("second batch, heads cached: requests %v, want one commit", got)
	}
	if got := inboxtest.Positions(t, s, "bob"); !slices.Equal(got, []string{"a1", "b1", "a2", "b2"}) {
		t.Fatalf("bob's inbox %v", got)
	}
}

// Two committers (two worker processes) write to the same users. Each one's
// cache goes stale when the other commits; the stale position fails its
// precondition, the committer reads the heads again, and every inbox stays
// gap-free and duplicate-free.
func TestCommitterStaleCacheCostsAConflictNotAGap(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, time.Minute)
	var o ops
	a := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100, RoundTrip: o.add})
	b := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100})
	var want []string
	for i := range 4 {
		for _, c := range []*inbox.Committer{a, b} {
			id := fmt.Sprintf("m%d-%p", i, c)
			want = append(want, id)
			inboxtest.NoErrors(t, c.Commit(ctx, []*courierv1.Envelope{inboxtest.Envelope(id, "alice", "bob", "dave")}))
		}
	}
	if got := inboxtest.Positions(t, s, "bob"); !slices.Equal(got, want) {
		t.Fatalf("bob's inbox %v, want %v", got, want)
	}
	if got := o.take(); got[inbox.OpCommit] < 7 {
		t.Fatalf("committer a's requests %v: its stale cache should have cost failed commits", got)
	}
}

// A message to 100 recipients, none of whose heads is known: the heads are
// read in one round of concurrent queries (every query is in flight before
// any answers), then one commit. Known heads: the commit alone.
func TestCommitterReadsAHundredHeadsInOneRound(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, time.Minute)
	to := make([]string, 100)
	for i := range to {
		to[i] = fmt.Sprintf("r%03d", i)
	}
	var o ops
	arrived := make(chan struct{})
	var mu sync.Mutex
	inFlight := 0
	released := false
	roundTrip := func(op string) {
		o.add(op)
		if op != inbox.OpReadHead {
			return
		}
		mu.Lock()
		inFlight++
		if inFlight == len(to) {
			close(arrived)
		}
		mu.Unlock()
		// Hold every query until all have started: sequential reads would
		// never get there.
		select {
		case <-arrived:
		case <-time.After(20 * time.Second):
			mu.Lock()
			if !released {
				released = true
				t.Errorf("only %d of %d head queries were in flight together", inFlight, len(to))
			}
			mu.Unlock()
		}
	}
	c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 1000, RoundTrip: roundTrip})
	inboxtest.NoErrors(t, c.Commit(ctx, []*courierv1.Envelope{inboxtest.Envelope("wide1", "alice", to...)}))
	if got := o.take(); got[inbox.OpReadHead] != 101 || // and the sender's
		got[inbox.OpGetMessages] != 1 || got[inbox.OpCommit] != 1 {
		t.Fatalf("requests %v", got)
	}
	res := c.Commit(ctx, []*courierv1.Envelope{inboxtest.Envelope("wide2", "alice", to...)})
	inboxtest.NoErrors(t, res)
	if got := o.take(); got[inbox.OpCommit] != 1 || len(got) != 1 {
		t.Fatalf("second 100-recipient message, heads cached: requests %v", got)
	}
	if res[0].Stored.Seqs["r042"] != 2 || len(res[0].Stored.Delivery().Recipients) != 101 || res[0].Stored.SenderSeq != 2 {
		t.Fatalf("stored %v", res[0].Stored.Seqs)
	}
}

// Inboxes and messages written by the layout before batched commits (one
// transaction per message, a fanned_out_at mark on the message, entries
// listing every recipient and no to_count) keep working: new batches
// continue each inbox after its last old position, a redelivered old
// message is found stored with its old positions, and the listing shows old
// and new entries as one gap-free sequence.
func TestOldLayoutInboxesContinueGapFree(t *testing.T) {
	fs := testenv.Firestore(t, testenv.Project(t))
	s := inbox.New(fs)
	ctx := testenv.Context(t, time.Minute)
	sent := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	for i, id := range []string{"legacy1", "legacy2"} {
		seq := int64(i + 1)
		if _, err := fs.Collection("messages").Doc(id).Create(ctx, map[string]any{
			"from": "alice", "to": []string{"bob", "carol"}, "payload": []byte(`{"n":1}`), "content_type": "application/json",
			"sent_at": sent, "stored_at": sent, "seqs": map[string]any{"bob": seq, "carol": seq}, "fanned_out_at": sent,
		}); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"bob", "carol"} {
			if _, err := fs.Collection("users").Doc(u).Collection("inbox").Doc(fmt.Sprintf("%020d", seq)).Create(ctx, map[string]any{
				"message_id": id, "seq": seq, "from": "alice", "to": []string{"bob", "carol"}, "payload": []byte(`{"n":1}`),
				"content_type": "application/json", "sent_at": sent, "stored_at": sent,
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100})
	res := c.Commit(ctx, []*courierv1.Envelope{inboxtest.Envelope("new1", "dave", "bob"), inboxtest.Envelope("legacy2", "alice", "bob", "carol"), inboxtest.Envelope("new2", "dave", "bob", "carol")})
	inboxtest.NoErrors(t, res)
	if res[1].Created || res[1].Stored.Seqs["bob"] != 2 || res[1].Stored.Seqs["carol"] != 2 {
		t.Fatalf("redelivered old message: created=%v seqs %v", res[1].Created, res[1].Stored.Seqs)
	}
	if got := inboxtest.Positions(t, s, "bob"); !slices.Equal(got, []string{"legacy1", "legacy2", "new1", "new2"}) {
		t.Fatalf("bob's inbox %v", got)
	}
	if got := inboxtest.Positions(t, s, "carol"); !slices.Equal(got, []string{"legacy1", "legacy2", "new2"}) {
		t.Fatalf("carol's inbox %v", got)
	}
	entries, err := s.List(ctx, "bob", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if old := entries[0].Message; old.ToCount != 2 || len(old.To) != 2 {
		t.Fatalf("old entry read back: to %v count %d", old.To, old.ToCount)
	}
	if _, err := fs.Collection("messages").Doc("new1").Get(ctx); err != nil {
		t.Fatal(err)
	}
}
