package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
)

// recording records the message ids of every batch the worker commits.
type recording struct {
	batch.Committer
	mu      sync.Mutex
	batches [][]string
}

func (r *recording) Commit(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result {
	ids := make([]string, len(envs))
	for i, e := range envs {
		ids[i] = e.MessageId
	}
	r.mu.Lock()
	r.batches = append(r.batches, ids)
	r.mu.Unlock()
	return r.Committer.Commit(ctx, envs)
}

func (r *recording) seen() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func (r *recording) wrap(c batch.Committer) batch.Committer { r.Committer = c; return r }

// largest returns the size of the largest batch.
func (r *recording) largest() int {
	n := 0
	for _, b := range r.seen() {
		n = max(n, len(b))
	}
	return n
}

// One recipient receiving from 200 senders at once: the messages share
// commits (the recipient gets consecutive positions within each), every
// message is in the inbox exactly once, positions are gap-free, each
// sender's messages keep their order, and the whole costs far fewer
// Firestore requests than messages.
func TestHotRecipientFromManySenders(t *testing.T) {
	w := newWorld(t, nil)
	rec := &recording{}
	wk := w.start(w.settings(), rec.wrap)
	w.publish(env("warm", "warm", "warm")) // the emulator's first write is slow
	w.deliveries.waitFor(t, time.Minute, "warm")
	before := roundTrips(wk)

	const senders, per = 200, 2
	var ids []string
	for i := range per {
		for s := range senders {
			e := env(fmt.Sprintf("s%03d-%d", s, i), fmt.Sprintf("s%03d", s), "star")
			ids = append(ids, e.MessageId)
			data, err := proto.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			w.publishAsync(data, e.MessageId, e.Sender)
		}
	}
	w.flush()
	w.deliveries.waitFor(t, 2*time.Minute, ids...)

	got := w.inboxIDs("star") // gap-free
	if len(got) != len(ids) {
		t.Fatalf("star holds %d messages, want %d", len(got), len(ids))
	}
	for s := range senders {
		mine := subsequence(got, func(id string) bool { return strings.HasPrefix(id, fmt.Sprintf("s%03d-", s)) })
		if want := []string{fmt.Sprintf("s%03d-0", s), fmt.Sprintf("s%03d-1", s)}; !slices.Equal(mine, want) {
			t.Fatalf("sender %d's messages in star's inbox: %v", s, mine)
		}
	}
	rpcs := roundTrips(wk) - before
	t.Logf("%d messages to one recipient in %d batches (largest %d), %v Firestore requests (%.3f per message)",
		len(ids), len(rec.seen())-1, rec.largest(), rpcs, rpcs/float64(len(ids)))
	if rec.largest() < 10 {
		t.Errorf("largest batch %d: the hot recipient's messages did not share commits", rec.largest())
	}
	// Each of the 200 senders costs one read of its own inbox head (for its
	// sender's copy) the first time, cached afterwards; the commits are what
	// the hot recipient shares.
	commits := testutil.ToFloat64(wk.m.FirestoreRoundTrips.WithLabelValues("commit"))
	if commits >= float64(len(ids))/4 || rpcs > commits+senders+2*float64(len(rec.seen())) {
		t.Errorf("%v Firestore requests (%v commits) for %d messages", rpcs, commits, len(ids))
	}
}

// A message to 100 recipients is stored with one commit: every recipient's
// inbox holds it, its delivery carries 100 cursors. Once the heads are
// known (a second such message) its commit is the only Firestore request.
func TestHundredRecipientMessage(t *testing.T) {
	w := newWorld(t, nil)
	wk := w.start(w.settings(), nil)
	to := make([]string, 100)
	for i := range to {
		to[i] = fmt.Sprintf("r%03d", i)
	}
	w.publish(env("wide-1", "alice", to...))
	w.deliveries.waitFor(t, time.Minute, "wide-1")
	commits := func() float64 { return testutil.ToFloat64(wk.m.FirestoreRoundTrips.WithLabelValues("commit")) }
	if c, heads := commits(), testutil.ToFloat64(wk.m.FirestoreRoundTrips.WithLabelValues("read_head")); c != 1 || heads != 101 { // the recipients' and the sender's
		t.Fatalf("first 100-recipient message: %v commits, %v head reads", c, heads)
	}
	before := roundTrips(wk)
	w.publish(env("wide-2", "alice", to...))
	w.deliveries.waitFor(t, time.Minute, "wide-2")
	if rpcs := roundTrips(wk) - before; rpcs != 1 {
		t.Fatalf("second 100-recipient message cost %v Firestore requests, want 1 (the commit)", rpcs)
	}
	for _, u := range []string{"r000", "r042", "r099"} {
		if got := w.inboxIDs(u); !slices.Equal(got, []string{"wide-1", "wide-2"}) {
			t.Fatalf("inbox of %s: %v", u, got)
		}
	}
	var d courierv1.Delivery
	if err := proto.Unmarshal(w.deliveries.with("wide-2")[0].Data, &d); err != nil || len(d.Recipients) != 101 || !d.Recipients[100].Outgoing ||
		d.Recipients[42].Cursor != inbox.EncodeCursor(2) || len(d.Message.To) != 0 || d.Message.ToCount != 100 {
		t.Fatalf("delivery: %d recipients, to %d, count %d, err %v", len(d.Recipients), len(d.Message.GetTo()), d.Message.GetToCount(), err)
	}
}

// Each sender's messages keep their order in every inbox and in the
// deliveries when batches are small, so that a sender's run is split over
// several batches and a batch holds the end of one sender's run and the
// start of another's.
func TestPerSenderOrderAcrossSmallBatches(t *testing.T) {
	w := newWorld(t, nil)
	s := w.settings()
	s.BatchMaxMessages = 5
	rec := &recording{}
	w.start(s, rec.wrap)
	const n = 12
	var all []string
	for i := range n {
		for _, from := range []string{"alice", "carol", "erin"} {
			id := fmt.Sprintf("%s-%02d", from, i)
			all = append(all, id)
			data, err := proto.Marshal(env(id, from, "bob", "dave"))
			if err != nil {
				t.Fatal(err)
			}
			w.publishAsync(data, id, from)
		}
	}
	w.flush()
	w.deliveries.waitFor(t, time.Minute, all...)
	mixed := false
	batchesOf := map[string]int{}
	for _, b := range rec.seen() {
		if len(b) > 5 {
			t.Fatalf("batch %v over WORKER_BATCH_MAX_MESSAGES", b)
		}
		senders := map[string]bool{}
		for _, id := range b {
			senders[strings.SplitN(id, "-", 2)[0]] = true
		}
		for from := range senders {
			batchesOf[from]++
		}
		mixed = mixed || len(senders) > 1
	}
	if batchesOf["alice"] < 2 || !mixed {
		t.Fatalf("batches %v: want runs split over batches and batches mixing senders", rec.seen())
	}
	inSenderOrder(t, "bob's deliveries by position", w.deliveries.byPosition(t, "bob"), n, "alice", "carol", "erin")
	for _, u := range []string{"bob", "dave"} {
		ids := w.inboxIDs(u)
		if len(ids) != len(all) {
			t.Fatalf("%s holds %d messages", u, len(ids))
		}
		inSenderOrder(t, u+"'s inbox", ids, n, "alice", "carol", "erin")
	}
}

// Poison inside a batch: an undecodable envelope and a message Firestore
// refuses (its document is over 1 MiB) travel with valid messages of the
// same and of other senders. The two are dead-lettered with their reasons;
// every valid message is stored, in order, and delivered.
func TestPoisonInsideABatch(t *testing.T) {
	w := newWorld(t, nil)
	s := w.settings()
	s.Limits.MaxPayloadBytes, s.Limits.MaxEnvelopeBytes = 1<<20, 2<<20
	s.BatchLinger = 300 * time.Millisecond // gather what the Pulls bring into one batch
	// huge is written three times (message, bob's entry, alice's own copy):
	// ~3.2 MiB, which must still share a batch, below the emulator's 4 MiB.
	s.BatchMaxBytes = 7 << 19
	rec := &recording{}
	wk := w.start(s, rec.wrap)

	huge := env("huge", "alice", "bob")
	huge.Payload = []byte(`"` + strings.Repeat("x", 1<<20-2) + `"`) // valid JSON, 1 MiB: over Firestore's field limit
	hugeData, err := proto.Marshal(huge)
	if err != nil {
		t.Fatal(err)
	}
	w.publishAsync(mustMarshal(t, env("a1", "alice", "bob")), "a1", "alice")
	w.publishAsync([]byte{0xff, 0xff, 0x01}, "poison", "alice")
	w.publishAsync(mustMarshal(t, env("a2", "alice", "bob")), "a2", "alice")
	w.publishAsync(hugeData, "huge", "alice")
	w.publishAsync(mustMarshal(t, env("a3", "alice", "bob")), "a3", "alice")
	w.publishAsync(mustMarshal(t, env("c1", "carol", "bob")), "c1", "carol")
	w.flush()

	w.deliveries.waitFor(t, time.Minute, "a1", "a2", "a3", "c1")
	w.dead.waitFor(t, time.Minute, "poison", "huge")
	for id, reason := range map[string]string{"poison": "undecodable", "huge": "rejected"} {
		letters := w.dead.with(id)
		if len(letters) != 1 || letters[0].Attributes[wire.AttrDeadLetterReason] != reason {
			t.Fatalf("%s: %d letters, reason %q", id, len(letters), letters[0].Attributes[wire.AttrDeadLetterReason])
		}
	}
	if got := subsequence(w.inboxIDs("bob"), func(id string) bool { return strings.HasPrefix(id, "a") }); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
		t.Fatalf("bob's inbox, alice's messages: %v", got)
	}
	if len(w.inboxIDs("bob")) != 4 {
		t.Fatalf("bob's inbox %v", w.inboxIDs("bob"))
	}
	shared := false
	for _, b := range rec.seen() {
		shared = shared || (slices.Contains(b, "huge") && len(b) > 1)
	}
	if !shared {
		t.Fatalf("batches %v: the rejected message never shared a batch", rec.seen())
	}
	if got := testutil.ToFloat64(wk.m.Retries); got != 0 {
		t.Errorf("%v retries: the batch-mates of a rejected message were delayed", got)
	}
}

func mustMarshal(t *testing.T, e *courierv1.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
