package inbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

func envelope(id, from string, to ...string) *courierv1.Envelope {
	return &courierv1.Envelope{
		MessageId: id, Sender: from, Recipients: to, Payload: []byte(`{"text":"` + id + `"}`),
		ContentType: "application/json", SentAt: timestamppb.Now(),
	}
}

func TestCommitIsIdempotent(t *testing.T) {
	project := testenv.Project(t)
	s := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)

	st, created, err := s.Commit(ctx, envelope("m1", "alice", "bob", "carol"))
	if err != nil || !created {
		t.Fatalf("first commit: %v created=%v", err, created)
	}
	again, created, err := s.Commit(ctx, envelope("m1", "alice", "bob", "carol"))
	if err != nil || created {
		t.Fatalf("second commit: %v created=%v", err, created)
	}
	if fmt.Sprint(again.Seqs) != fmt.Sprint(st.Seqs) || again.Message.Id != "m1" {
		t.Fatalf("redelivery changed the stored message: %v vs %v", again.Seqs, st.Seqs)
	}
	for _, u := range []string{"bob", "carol"} {
		entries, err := s.List(ctx, u, 0, 10)
		if err != nil || len(entries) != 1 || entries[0].Message.Id != "m1" || entries[0].Seq != 1 {
			t.Fatalf("inbox of %s: %v %v", u, entries, err)
		}
	}
	if entries, _ := s.List(ctx, "alice", 0, 10); len(entries) != 0 {
		t.Fatalf("sender got an inbox entry: %v", entries)
	}
	d := st.Delivery()
	if len(d.Recipients) != 2 || d.Recipients[0].Cursor != inbox.EncodeCursor(1) {
		t.Fatalf("delivery: %v", d)
	}
}

func TestListPagesAfterCursor(t *testing.T) {
	project := testenv.Project(t)
	s := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)
	for i := range 5 {
		if _, _, err := s.Commit(ctx, envelope(fmt.Sprintf("m%d", i), "alice", "bob")); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var after int64
	for {
		page, err := s.List(ctx, "bob", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			got = append(got, e.Message.Id)
		}
		after = page[len(page)-1].Seq
	}
	if fmt.Sprint(got) != "[m0 m1 m2 m3 m4]" {
		t.Fatalf("pages = %v", got)
	}
}

// TestConcurrentCommitsLeaveNoGap commits many messages to one recipient
// from concurrent writers while a reader keeps resuming from its last
// cursor. Because positions are handed out in commit order, the reader
// must end up with every message exactly once, and positions 1..n.
func TestConcurrentCommitsLeaveNoGap(t *testing.T) {
	project := testenv.Project(t)
	s := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, 2*time.Minute)
	const writers, per = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*per)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, _, err := s.Commit(ctx, envelope(fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("s%d", w), "dana")); err != nil {
					errs <- err
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[string]bool{}
	var after int64
	read := func() {
		page, err := s.List(ctx, "dana", after, 50)
		if err != nil {
			t.Error(err)
			return
		}
		for _, e := range page {
			if e.Seq != after+1 {
				t.Fatalf("gap: after %d came %d", after, e.Seq)
			}
			if seen[e.Message.Id] {
				t.Fatalf("duplicate %s", e.Message.Id)
			}
			seen[e.Message.Id] = true
			after = e.Seq
		}
	}
	for {
		select {
		case <-done:
			read()
			read()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if len(seen) != writers*per {
				t.Fatalf("reader saw %d of %d", len(seen), writers*per)
			}
			return
		default:
			read()
		}
	}
}

func TestMarkDelivered(t *testing.T) {
	project := testenv.Project(t)
	fs := testenv.Firestore(t, project)
	s := inbox.New(fs)
	ctx := testenv.Context(t, time.Minute)
	if _, _, err := s.Commit(ctx, envelope("m1", "alice", "bob", "carol")); err != nil {
		t.Fatal(err)
	}
	if users, n, err := s.DeliveryState(ctx, "m1", true, nil); err != nil || n != 0 || len(users) != 0 {
		t.Fatalf("before any ack: %v %d %v", users, n, err)
	}
	if err := s.MarkDelivered(ctx, "m1", "mallory"); err != inbox.ErrNotFound {
		t.Fatalf("non-recipient mark: %v", err)
	}
	if err := s.MarkDelivered(ctx, "nope", "bob"); err != inbox.ErrNotFound {
		t.Fatalf("unknown message: %v", err)
	}
	// A batch with good and bad acks: each gets its own answer.
	errs := s.MarkDeliveredBatch(ctx, []inbox.Ack{{"m1", "bob"}, {"m1", "mallory"}, {"nope", "carol"}, {"m1", "bob"}})
	if errs[0] != nil || errs[1] != inbox.ErrNotFound || errs[2] != inbox.ErrNotFound || errs[3] != nil {
		t.Fatalf("batch results: %v", errs)
	}
	users, n, err := s.DeliveryState(ctx, "m1", true, nil)
	if err != nil || n != 1 || len(users) != 1 || users[0] != "bob" {
		t.Fatalf("after bob's acks: %v %d %v", users, n, err)
	}
	if _, n, err := s.DeliveryState(ctx, "m1", false, nil); err != nil || n != 1 {
		t.Fatalf("count: %d %v", n, err)
	}
	// The message document itself is not written by acks (a popular
	// message would be a hot document).
	snap, err := fs.Collection(inbox.MessagesCollection).Doc("m1").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Data()["delivered"]; ok {
		t.Fatal("an ack wrote the message document")
	}
	// Acks kept the old way (a "delivered" map on the message) still count.
	users, n, err = s.DeliveryState(ctx, "m1", true, map[string]time.Time{"carol": time.Now()})
	if err != nil || n != 2 || fmt.Sprint(users) != "[bob carol]" {
		t.Fatalf("with legacy acks: %v %d %v", users, n, err)
	}
	if _, err := s.Get(ctx, "missing"); err != inbox.ErrNotFound {
		t.Fatalf("missing: %v", err)
	}
	_ = context.Background
}

// TestConcurrentDuplicateCommits commits the same envelope from several
// goroutines at once (a redelivery racing the original): exactly one
// creates it, all see the same positions, and each inbox holds it once.
func TestConcurrentDuplicateCommits(t *testing.T) {
	project := testenv.Project(t)
	s := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)
	const n = 6
	var wg sync.WaitGroup
	results := make([]inbox.Stored, n)
	createdCount := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], createdCount[i], errs[i] = s.Commit(ctx, envelope("dup", "alice", "bob", "carol"))
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if createdCount[i] {
			created++
		}
		if fmt.Sprint(results[i].Seqs) != fmt.Sprint(results[0].Seqs) {
			t.Fatalf("positions differ: %v vs %v", results[i].Seqs, results[0].Seqs)
		}
	}
	if created != 1 {
		t.Fatalf("%d commits created the message, want 1", created)
	}
	for _, u := range []string{"bob", "carol"} {
		entries, err := s.List(ctx, u, 0, 10)
		if err != nil || len(entries) != 1 {
			t.Fatalf("inbox of %s: %v %v", u, entries, err)
		}
	}
}

// A large send stores the whole recipient list once, on the message; each
// inbox entry keeps only the count, and the delivery shows the same.
func TestLargeSendStoresBoundedEntries(t *testing.T) {
	project := testenv.Project(t)
	s := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)
	to := make([]string, 40)
	for i := range to {
		to[i] = fmt.Sprintf("u%02d", i)
	}
	st, _, err := s.Commit(ctx, envelope("big", "alice", to...))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.List(ctx, "u07", 0, 10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("inbox of u07: %v %v", entries, err)
	}
	if m := entries[0].Message; len(m.To) != 0 || m.ToCount != 40 {
		t.Fatalf("entry of a 40-recipient send: to %v count %d", m.To, m.ToCount)
	}
	if got, err := s.Get(ctx, "big"); err != nil || len(got.Message.To) != 40 {
		t.Fatalf("message keeps the whole list: %v %v", got.Message.GetTo(), err)
	}
	if d := st.Delivery(); len(d.Message.To) != 0 || d.Message.ToCount != 40 || len(d.Recipients) != 40 {
		t.Fatalf("delivery: to %d count %d recipients %d", len(d.Message.To), d.Message.ToCount, len(d.Recipients))
	}
}
