package inbox_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/inbox"
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

// positions returns user's inbox as message ids, checking positions 1..n.
func positions(t *testing.T, s *inbox.Store, user string) []string {
	t.Helper()
	entries, err := s.List(testenv.Context(t, 20*time.Second), user, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		if e.Seq != int64(i+1) {
			t.Fatalf("inbox of %s: position %d at index %d", user, e.Seq, i)
		}
		ids[i] = e.Message.Id
	}
	return ids
}

func mustCommit(t *testing.T, res []inbox.Result) {
	t.Helper()
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
}

// One batch gives each recipient consecutive positions in the batch's
// order, in one commit; the next batch, with every head cached, costs that
// one commit and nothing else.
func TestCommitterBatchTakesConsecutivePositions(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, time.Minute)
	var o ops
	c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100, RoundTrip: o.add})

	res := c.Commit(ctx, []*courierv1.Envelope{
		envelope("a1", "alice", "bob", "carol"), envelope("b1", "bea", "bob"), envelope("a2", "alice", "bob", "carol"),
	})
	mustCommit(t, res)
	if got := o.take(); got[inbox.OpCommit] != 1 || got[inbox.OpReadHead] != 2 || got[inbox.OpGetMessages] != 1 {
		t.Fatalf("first batch, nothing cached: requests %v", got)
	}
	if res[0].Stored.Seqs["bob"] != 1 || res[1].Stored.Seqs["bob"] != 2 || res[2].Stored.Seqs["bob"] != 3 ||
		res[2].Stored.Seqs["carol"] != 2 || !res[0].Created {
		t.Fatalf("positions %v %v %v", res[0].Stored.Seqs, res[1].Stored.Seqs, res[2].Stored.Seqs)
	}
	mustCommit(t, c.Commit(ctx, []*courierv1.Envelope{envelope("b2", "bea", "bob", "carol")}))
	if got := o.take(); got[inbox.OpCommit] != 1 || len(got) != 1 {
		t.Fatalf("second batch, heads cached: requests %v, want one commit", got)
	}
	if got := positions(t, s, "bob"); !slices.Equal(got, []string{"a1", "b1", "a2", "b2"}) {
		t.Fatalf("bob's inbox %v", got)
	}
	if got := positions(t, s, "carol"); !slices.Equal(got, []string{"a1", "a2", "b2"}) {
		t.Fatalf("carol's inbox %v", got)
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
			mustCommit(t, c.Commit(ctx, []*courierv1.Envelope{envelope(id, "alice", "bob", "dave")}))
		}
	}
	if got := positions(t, s, "bob"); !slices.Equal(got, want) {
		t.Fatalf("bob's inbox %v, want %v", got, want)
	}
	if got := o.take(); got[inbox.OpCommit] < 7 {
		t.Fatalf("committer a's requests %v: its stale cache should have cost failed commits", got)
	}
}

// Concurrent committers hammering one user: positions stay 1..n, each
// message once.
func TestConcurrentCommittersLeaveNoGap(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, 2*time.Minute)
	const writers, batches, per = 3, 5, 4
	var wg sync.WaitGroup
	for w := range writers {
		c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 10})
		wg.Go(func() {
			for b := range batches {
				var envs []*courierv1.Envelope
				for i := range per {
					envs = append(envs, envelope(fmt.Sprintf("w%d-%d-%d", w, b, i), fmt.Sprintf("s%d", w), "hot", fmt.Sprintf("u%d", i)))
				}
				for _, r := range c.Commit(ctx, envs) {
					if r.Err != nil {
						t.Error(r.Err)
					}
				}
			}
		})
	}
	wg.Wait()
	got := positions(t, s, "hot")
	if len(got) != writers*batches*per {
		t.Fatalf("hot has %d messages, want %d", len(got), writers*batches*per)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s twice", id)
		}
		seen[id] = true
	}
	for w := range writers { // each writer's messages in its order
		var mine []string
		for _, id := range got {
			if strings.HasPrefix(id, fmt.Sprintf("w%d-", w)) {
				mine = append(mine, id)
			}
		}
		if !slices.IsSortedFunc(mine, func(x, y string) int { return strings.Compare(x, y) }) {
			t.Fatalf("writer %d's messages out of order: %v", w, mine)
		}
	}
}

// A message stored before (a redelivery) leaves the batch: nothing is
// written for it and it keeps its first positions; the rest of the batch
// is stored. The same id twice in one batch is stored once.
func TestCommitterStoredMessagesLeaveTheBatch(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, time.Minute)
	c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100})
	first := c.Commit(ctx, []*courierv1.Envelope{envelope("old", "alice", "bob")})
	mustCommit(t, first)

	res := c.Commit(ctx, []*courierv1.Envelope{
		envelope("new1", "alice", "bob"), envelope("old", "alice", "bob"), envelope("new2", "alice", "bob"), envelope("new2", "alice", "bob"),
	})
	mustCommit(t, res)
	if res[1].Created || res[1].Stored.Seqs["bob"] != 1 {
		t.Fatalf("redelivered message: created=%v seqs %v", res[1].Created, res[1].Stored.Seqs)
	}
	if !res[0].Created || !res[2].Created || res[3].Created || res[3].Stored.Seqs["bob"] != res[2].Stored.Seqs["bob"] {
		t.Fatalf("results %+v", res)
	}
	if got := positions(t, s, "bob"); !slices.Equal(got, []string{"old", "new1", "new2"}) {
		t.Fatalf("bob's inbox %v", got)
	}
}

// A message Firestore refuses for its content (a document over 1 MiB) is
// found by halving the batch and fails alone, with InvalidArgument; its
// batch-mates are stored in order with consecutive positions.
func TestCommitterIsolatesARejectedMessage(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, time.Minute)
	c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100})
	huge := envelope("huge", "alice", "bob")
	huge.Payload = []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	envs := []*courierv1.Envelope{
		envelope("m1", "alice", "bob"), envelope("m2", "carol", "bob"), huge, envelope("m3", "alice", "bob"), envelope("m4", "carol", "bob"),
	}
	res := c.Commit(ctx, envs)
	for i, r := range res {
		if envs[i] == huge {
			if status.Code(r.Err) != codes.InvalidArgument {
				t.Fatalf("huge: %v", r.Err)
			}
			continue
		}
		if r.Err != nil || !r.Created {
			t.Fatalf("%s: %v", envs[i].MessageId, r.Err)
		}
	}
	if got := positions(t, s, "bob"); !slices.Equal(got, []string{"m1", "m2", "m3", "m4"}) {
		t.Fatalf("bob's inbox %v", got)
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
	mustCommit(t, c.Commit(ctx, []*courierv1.Envelope{envelope("wide1", "alice", to...)}))
	if got := o.take(); got[inbox.OpReadHead] != 100 || got[inbox.OpGetMessages] != 1 || got[inbox.OpCommit] != 1 {
		t.Fatalf("requests %v", got)
	}
	res := c.Commit(ctx, []*courierv1.Envelope{envelope("wide2", "alice", to...)})
	mustCommit(t, res)
	if got := o.take(); got[inbox.OpCommit] != 1 || len(got) != 1 {
		t.Fatalf("second 100-recipient message, heads cached: requests %v", got)
	}
	if res[0].Stored.Seqs["r042"] != 2 || len(res[0].Stored.Delivery().Recipients) != 100 {
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
	res := c.Commit(ctx, []*courierv1.Envelope{envelope("new1", "dave", "bob"), envelope("legacy2", "alice", "bob", "carol"), envelope("new2", "dave", "bob", "carol")})
	mustCommit(t, res)
	if res[1].Created || res[1].Stored.Seqs["bob"] != 2 || res[1].Stored.Seqs["carol"] != 2 {
		t.Fatalf("redelivered old message: created=%v seqs %v", res[1].Created, res[1].Stored.Seqs)
	}
	if got := positions(t, s, "bob"); !slices.Equal(got, []string{"legacy1", "legacy2", "new1", "new2"}) {
		t.Fatalf("bob's inbox %v", got)
	}
	if got := positions(t, s, "carol"); !slices.Equal(got, []string{"legacy1", "legacy2", "new2"}) {
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
