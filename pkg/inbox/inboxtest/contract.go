package inboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Backend is one implementation of the inbox store under the contract.
type Backend struct {
	Store Store
	// NewCommitter returns a batch committer on Store; the suite runs
	// several at once, as several workers do.
	NewCommitter func() Committer
}

// Run checks every behaviour the services rely on of an inbox store.
// newBackend is called once per subtest and returns an empty store.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"CommitIsIdempotent", commitIsIdempotent},
		{"ListPagesAfterCursor", listPagesAfterCursor},
		{"PagesAreBoundedByBytes", pagesAreBoundedByBytes},
		{"HeadIsTheLastPosition", headIsTheLastPosition},
		{"GetUnknownIsNotFound", getUnknownIsNotFound},
		{"FailuresAreNotNotFound", failuresAreNotNotFound},
		{"ConcurrentCommitsLeaveNoGap", concurrentCommitsLeaveNoGap},
		{"ConcurrentDuplicateCommits", concurrentDuplicateCommits},
		{"RecipientListRule", recipientListRule},
		{"Acks", acks},
		{"SenderCopy", senderCopy},
		{"BatchTakesConsecutivePositions", batchTakesConsecutivePositions},
		{"StoredMessagesLeaveTheBatch", storedMessagesLeaveTheBatch},
		{"RejectedMessageFailsAlone", rejectedMessageFailsAlone},
		{"ConcurrentCommittersLeaveNoGap", concurrentCommittersLeaveNoGap},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newBackend(t)) })
	}
}

// Envelope returns a valid envelope of a JSON payload naming id.
func Envelope(id, from string, to ...string) *courierv1.Envelope {
	return &courierv1.Envelope{
		MessageId: id, Sender: from, Recipients: to, Payload: []byte(`{"text":"` + id + `"}`),
		ContentType: "application/json", SentAt: timestamppb.Now(),
	}
}

// Commit stores env's message alone, in a batch of one with no cached
// heads: what the pipeline-worker does for a batch, for tests that store
// one message at a time. It is idempotent on the message id (created false
// and the stored version when it exists). s is an *inbox.Store, a *Memory
// or a *Faulty.
func Commit(ctx context.Context, s Store, env *courierv1.Envelope) (st inbox.Stored, created bool, err error) {
	var c Committer
	switch s := s.(type) {
	case *inbox.Store:
		c = s.NewCommitter(inbox.CommitterOptions{})
	case *Memory:
		c = s.NewCommitter()
	case *Faulty:
		c = s.Memory.NewCommitter()
	default:
		return inbox.Stored{}, false, fmt.Errorf("inboxtest.Commit: %T is none of the kit's stores", s)
	}
	r := c.Commit(ctx, []*courierv1.Envelope{env})[0]
	return r.Stored, r.Created, r.Err
}

// MarkDelivered records one ack through MarkDeliveredBatch and returns its
// error.
func MarkDelivered(ctx context.Context, s interface {
	MarkDeliveredBatch(context.Context, []inbox.Ack) []error
}, id, user string) error {
	return s.MarkDeliveredBatch(ctx, []inbox.Ack{{MessageID: id, User: user}})[0]
}

// MustCommit commits envs one by one and fails the test on any error.
func MustCommit(t testing.TB, s Store, envs ...*courierv1.Envelope) []inbox.Stored {
	t.Helper()
	out := make([]inbox.Stored, len(envs))
	for i, env := range envs {
		st, _, err := Commit(testenv.Context(t, time.Minute), s, env)
		if err != nil {
			t.Fatalf("commit %s: %v", env.MessageId, err)
		}
		out[i] = st
	}
	return out
}

// Positions returns user's inbox as message ids, checking that positions
// are 1..n.
func Positions(t testing.TB, s Store, user string) []string {
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

// NoErrors fails the test if any result of a batch commit holds an error.
func NoErrors(t testing.TB, res []inbox.Result) {
	t.Helper()
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
}

// A redelivered envelope changes nothing and yields the first commit; what
// a commit returns is exactly what later reads return.
func commitIsIdempotent(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, time.Minute)
	st, created, err := Commit(ctx, s, Envelope("m1", "alice", "bob", "carol"))
	if err != nil || !created {
		t.Fatalf("first commit: %v created=%v", err, created)
	}
	again, created, err := Commit(ctx, s, Envelope("m1", "alice", "bob", "carol"))
	if err != nil || created {
		t.Fatalf("second commit: %v created=%v", err, created)
	}
	if fmt.Sprint(again.Seqs) != fmt.Sprint(st.Seqs) || !proto.Equal(again.Message, st.Message) {
		t.Fatalf("redelivery changed the stored message: %v %v vs %v %v", again.Seqs, again.Message, st.Seqs, st.Message)
	}
	got, err := s.Get(ctx, "m1")
	if err != nil || !proto.Equal(got.Message, st.Message) || fmt.Sprint(got.Seqs) != fmt.Sprint(st.Seqs) {
		t.Fatalf("read back %v %v (%v), committed %v %v", got.Message, got.Seqs, err, st.Message, st.Seqs)
	}
	for _, u := range []string{"bob", "carol"} {
		entries, err := s.List(ctx, u, 0, 10)
		if err != nil || len(entries) != 1 || entries[0].Message.Id != "m1" || entries[0].Seq != 1 {
			t.Fatalf("inbox of %s: %v %v", u, entries, err)
		}
	}
	// The sender's copy: one outgoing entry, written once.
	if entries, _ := s.List(ctx, "alice", 0, 10); len(entries) != 1 || !entries[0].Message.Outgoing || entries[0].Message.Id != "m1" {
		t.Fatalf("sender's inbox: %v, want one outgoing copy of m1", entries)
	}
	d := st.Delivery()
	if len(d.Recipients) != 3 || d.Recipients[0].Cursor != inbox.EncodeCursor(1) ||
		d.Recipients[2].UserId != "alice" || !d.Recipients[2].Outgoing || d.Recipients[0].Outgoing {
		t.Fatalf("delivery: %v", d)
	}
}

// senderCopy: every stored message has exactly one entry in its sender's
// inbox, marked outgoing, through redeliveries and repeats within a batch;
// a sender who is also a recipient gets only the recipient's entry; every
// entry carries the conversation (named, or derived from the members).
func senderCopy(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, time.Minute)
	named := Envelope("g1", "sam", "tia", "uma")
	named.ConversationId = "team-7"
	direct := Envelope("p1", "sam", "tia")
	self := Envelope("s1", "sam", "sam", "tia")
	for round := 0; round < 3; round++ {
		NoErrors(t, b.NewCommitter().Commit(ctx, []*courierv1.Envelope{named, direct, self, direct}))
	}
	entries, err := s.List(ctx, "sam", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%d:%s:%v:%s", e.Seq, e.Message.Id, e.Message.Outgoing, e.Message.ConversationId))
	}
	dm := wire.DeriveConversationID([]string{"sam", "tia"})
	want := []string{"1:g1:true:team-7", "2:p1:true:" + dm, "3:s1:false:" + wire.DeriveConversationID([]string{"sam", "tia"})}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sender's inbox %v, want %v", got, want)
	}
	tia, err := s.List(ctx, "tia", 0, 10)
	if err != nil || len(tia) != 3 || tia[1].Message.Outgoing || tia[1].Message.ConversationId != dm {
		t.Fatalf("recipient's inbox %v %v", tia, err)
	}
	st, err := s.Get(ctx, "p1")
	if err != nil || st.SenderSeq != 2 || st.Message.ConversationId != dm {
		t.Fatalf("stored p1: sender seq %d conversation %q (%v)", st.SenderSeq, st.Message.GetConversationId(), err)
	}
	if _, ok := st.Seqs["sam"]; ok {
		t.Fatalf("the sender's copy must not count as a recipient: %v", st.Seqs)
	}
	if st, _ := s.Get(ctx, "s1"); st.SenderSeq != 0 {
		t.Fatalf("a sender among the recipients has no separate copy: %d", st.SenderSeq)
	}
}

// Pages after a cursor, oldest first, carrying the whole message; a page
// after the end, and a page of limit 0, are empty.
func listPagesAfterCursor(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, time.Minute)
	var sent []inbox.Stored
	for i := range 5 {
		sent = append(sent, MustCommit(t, s, Envelope(fmt.Sprintf("m%d", i), "alice", "bob"))...)
	}
	var got []string
	var after int64
	for {
		page, err := s.List(ctx, "bob", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d entries, limit 2", len(page))
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
	page, err := s.List(ctx, "bob", 3, 10)
	if err != nil || len(page) != 2 || page[0].Seq != 4 || page[0].Cursor() != inbox.EncodeCursor(4) {
		t.Fatalf("after 3: %v %v", page, err)
	}
	want := inbox.Shown(sent[3].Message)
	if m := page[0].Message; !proto.Equal(m, want) {
		t.Fatalf("entry %v, want the message as shown %v", m, want)
	}
	if page, err := s.List(ctx, "bob", 0, 0); err != nil || len(page) != 0 {
		t.Fatalf("limit 0: %v %v", page, err)
	}
	if page, err := s.List(ctx, "nobody", 0, 10); err != nil || len(page) != 0 {
		t.Fatalf("empty inbox: %v %v", page, err)
	}
}

// A page holds no more entries than fit in its byte bound, but at least
// one; More says whether entries may follow; walking pages by their last
// position reads every entry once, in order.
func pagesAreBoundedByBytes(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, time.Minute)
	big := strings.Repeat("x", 10<<10)
	var envs []*courierv1.Envelope
	for i := range 7 {
		env := Envelope(fmt.Sprintf("m%d", i), "alice", "bob")
		env.Payload = []byte(fmt.Sprintf("%q", big))
		envs = append(envs, env)
	}
	MustCommit(t, s, envs...)
	one := inbox.EntryBytes(&courierv1.Message{Id: "m0", From: "alice", To: []string{"bob"}, Payload: envs[0].Payload, ContentType: "application/json"})
	lim := inbox.PageLimit{Items: 100, Bytes: 3*one + one/2}
	var got []string
	var after int64
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatalf("no end after %d pages: %v", pages, got)
		}
		page, err := s.ListPage(ctx, "bob", after, lim)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, e := range page.Entries {
			total += inbox.EntryBytes(e.Message)
			got = append(got, e.Message.Id)
			after = e.Seq
		}
		if len(page.Entries) > 3 || (len(page.Entries) > 1 && total > lim.Bytes) {
			t.Fatalf("page of %d entries, %d bytes, over the bound %d", len(page.Entries), total, lim.Bytes)
		}
		if !page.More {
			if len(page.Entries) != 1 {
				t.Fatalf("last page has %d entries, want the 7th alone", len(page.Entries))
			}
			break
		}
		if len(page.Entries) != 3 {
			t.Fatalf("a page with more after it holds %d entries, want 3", len(page.Entries))
		}
	}
	if fmt.Sprint(got) != "[m0 m1 m2 m3 m4 m5 m6]" {
		t.Fatalf("pages = %v", got)
	}
	// One entry larger than the bound still comes, alone.
	page, err := s.ListPage(ctx, "bob", 0, inbox.PageLimit{Items: 100, Bytes: 10})
	if err != nil || len(page.Entries) != 1 || !page.More {
		t.Fatalf("bound below one entry: %d entries, more=%v, %v", len(page.Entries), page.More, err)
	}
	// A page full by count says more may follow.
	page, err = s.ListPage(ctx, "bob", 0, inbox.PageLimit{Items: 2})
	if err != nil || len(page.Entries) != 2 || !page.More {
		t.Fatalf("full by count: %d entries, more=%v, %v", len(page.Entries), page.More, err)
	}
	page, err = s.ListPage(ctx, "bob", 6, inbox.PageLimit{Items: 2})
	if err != nil || len(page.Entries) != 1 || page.More {
		t.Fatalf("the last entry: %d entries, more=%v, %v", len(page.Entries), page.More, err)
	}
}

func headIsTheLastPosition(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, time.Minute)
	if h, err := s.Head(ctx, "bob"); err != nil || h != 0 {
		t.Fatalf("empty inbox head = %d, %v", h, err)
	}
	MustCommit(t, s, Envelope("m1", "alice", "bob"), Envelope("m2", "alice", "bob", "carol"))
	if h, err := s.Head(ctx, "bob"); err != nil || h != 2 {
		t.Fatalf("head = %d, %v; want 2", h, err)
	}
	if h, err := s.Head(ctx, "carol"); err != nil || h != 1 {
		t.Fatalf("carol's head = %d, %v; want 1", h, err)
	}
}

func getUnknownIsNotFound(t *testing.T, b Backend) {
	ctx := testenv.Context(t, time.Minute)
	if _, err := b.Store.Get(ctx, "missing"); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

// A store that cannot answer (here: the caller gave up) says so with an
// error that is not ErrNotFound (the gateway answers 503, not 404), and a
// failed commit stores nothing.
func failuresAreNotNotFound(t *testing.T, b Backend) {
	s := b.Store
	MustCommit(t, s, Envelope("m1", "alice", "bob"))
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(done, "m1"); err == nil || errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("get: %v", err)
	}
	if _, err := s.List(done, "bob", 0, 10); err == nil {
		t.Fatal("list answered without its context")
	}
	if _, err := s.Head(done, "bob"); err == nil {
		t.Fatal("head answered without its context")
	}
	if _, _, err := s.DeliveryState(done, "m1", true); err == nil {
		t.Fatal("delivery state answered without its context")
	}
	if errs := s.MarkDeliveredBatch(done, []inbox.Ack{{MessageID: "m1", User: "bob"}}); errs[0] == nil || errors.Is(errs[0], inbox.ErrNotFound) {
		t.Fatalf("ack: %v", errs)
	}
	if _, _, err := Commit(done, s, Envelope("m2", "alice", "bob")); err == nil {
		t.Fatal("commit succeeded without its context")
	}
	if res := b.NewCommitter().Commit(done, []*courierv1.Envelope{Envelope("m3", "alice", "bob")}); res[0].Err == nil {
		t.Fatal("batch commit succeeded without its context")
	}
	ctx := testenv.Context(t, time.Minute)
	for _, id := range []string{"m2", "m3"} {
		if _, err := s.Get(ctx, id); !errors.Is(err, inbox.ErrNotFound) {
			t.Fatalf("%s after a failed commit: %v", id, err)
		}
	}
	if users, n, err := s.DeliveryState(ctx, "m1", true); err != nil || n != 0 {
		t.Fatalf("after a failed ack: %v %d %v", users, n, err)
	}
	if got := Positions(t, s, "bob"); !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("bob's inbox %v", got)
	}
}

// Many messages to one recipient from concurrent writers while a reader
// keeps resuming from its last cursor: because positions are handed out in
// commit order, the reader ends up with every message exactly once, and
// positions 1..n.
func concurrentCommitsLeaveNoGap(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, 2*time.Minute)
	const writers, per = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*per)
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				if _, _, err := Commit(ctx, s, Envelope(fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("s%d", w), "dana")); err != nil {
					errs <- err
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[string]bool{}
	var after int64
	read := func() {
		page, err := s.List(ctx, "dana", after, 50)
		if err != nil {
			t.Fatal(err)
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

// The same envelope committed from several goroutines at once (a
// redelivery racing the original): exactly one creates it, all see the same
// positions, and each inbox holds it once.
func concurrentDuplicateCommits(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, time.Minute)
	const n = 6
	var wg sync.WaitGroup
	results := make([]inbox.Stored, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], created[i], errs[i] = Commit(ctx, s, Envelope("dup", "alice", "bob", "carol")) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if created[i] {
			creators++
		}
		if fmt.Sprint(results[i].Seqs) != fmt.Sprint(results[0].Seqs) {
			t.Fatalf("positions differ: %v vs %v", results[i].Seqs, results[0].Seqs)
		}
	}
	if creators != 1 {
		t.Fatalf("%d commits created the message, want 1", creators)
	}
	for _, u := range []string{"bob", "carol"} {
		entries, err := s.List(ctx, u, 0, 10)
		if err != nil || len(entries) != 1 {
			t.Fatalf("inbox of %s: %v %v", u, entries, err)
		}
	}
}

// An inbox entry lists the recipients only for a send to at most
// inbox.MaxListedRecipients users, and always carries to_count; the message
// keeps the whole list, and the delivery shows what the entry shows.
func recipientListRule(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, time.Minute)
	users := func(n int) []string {
		to := make([]string, n)
		for i := range to {
			to[i] = fmt.Sprintf("u%02d", i)
		}
		return to
	}
	for _, c := range []struct {
		n      int
		listed bool
	}{{inbox.MaxListedRecipients, true}, {inbox.MaxListedRecipients + 1, false}, {40, false}} {
		id := fmt.Sprintf("to%d", c.n)
		st := MustCommit(t, s, Envelope(id, "alice", users(c.n)...))[0]
		head, err := s.Head(ctx, "u07")
		if err != nil {
			t.Fatal(err)
		}
		entries, err := s.List(ctx, "u07", head-1, 10)
		if err != nil || len(entries) != 1 || entries[0].Message.Id != id {
			t.Fatalf("%s: inbox of u07: %v %v", id, entries, err)
		}
		wantTo := 0
		if c.listed {
			wantTo = c.n
		}
		if m := entries[0].Message; len(m.To) != wantTo || m.ToCount != int32(c.n) {
			t.Fatalf("%s: entry to %v count %d, want %d listed of %d", id, m.To, m.ToCount, wantTo, c.n)
		}
		if got, err := s.Get(ctx, id); err != nil || len(got.Message.To) != c.n {
			t.Fatalf("%s: the message keeps the whole list: %v %v", id, got.Message.GetTo(), err)
		}
		if d := st.Delivery(); len(d.Message.To) != wantTo || d.Message.ToCount != int32(c.n) || len(d.Recipients) != c.n+1 {
			t.Fatalf("%s: delivery to %d count %d recipients %d", id, len(d.Message.To), d.Message.ToCount, len(d.Recipients))
		}
	}
}

// Only a recipient's ack counts; each ack of a batch gets its own answer;
// repeating an ack changes nothing; the state lists or counts the acks.
func acks(t *testing.T, b Backend) {
	s := b.Store
	ctx := testenv.Context(t, time.Minute)
	MustCommit(t, s, Envelope("m1", "alice", "bob", "carol"))
	if users, n, err := s.DeliveryState(ctx, "m1", true); err != nil || n != 0 || len(users) != 0 {
		t.Fatalf("before any ack: %v %d %v", users, n, err)
	}
	if err := MarkDelivered(ctx, s, "m1", "mallory"); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("non-recipient mark: %v", err)
	}
	if err := MarkDelivered(ctx, s, "m1", "alice"); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("the sender's mark: %v", err)
	}
	if err := MarkDelivered(ctx, s, "nope", "bob"); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("unknown message: %v", err)
	}
	errs := s.MarkDeliveredBatch(ctx, []inbox.Ack{
		{MessageID: "m1", User: "bob"}, {MessageID: "m1", User: "mallory"}, {MessageID: "nope", User: "carol"}, {MessageID: "m1", User: "bob"},
	})
	if len(errs) != 4 || errs[0] != nil || !errors.Is(errs[1], inbox.ErrNotFound) || !errors.Is(errs[2], inbox.ErrNotFound) || errs[3] != nil {
		t.Fatalf("batch results: %v", errs)
	}
	users, n, err := s.DeliveryState(ctx, "m1", true)
	if err != nil || n != 1 || fmt.Sprint(users) != "[bob]" {
		t.Fatalf("after bob's acks: %v %d %v", users, n, err)
	}
	if _, n, err := s.DeliveryState(ctx, "m1", false); err != nil || n != 1 {
		t.Fatalf("count: %d %v", n, err)
	}
	if err := MarkDelivered(ctx, s, "m1", "carol"); err != nil {
		t.Fatal(err)
	}
	if users, n, err := s.DeliveryState(ctx, "m1", true); err != nil || n != 2 || fmt.Sprint(users) != "[bob carol]" {
		t.Fatalf("after carol's ack: %v %d %v", users, n, err)
	}
	for _, c := range []struct {
		id, user string
		want     bool
	}{{"m1", "bob", true}, {"m1", "carol", true}, {"m1", "alice", false}, {"m1", "mallory", false}, {"nope", "bob", false}} {
		if got, err := s.Acknowledged(ctx, c.id, c.user); err != nil || got != c.want {
			t.Fatalf("Acknowledged(%s, %s) = %v %v, want %v", c.id, c.user, got, err, c.want)
		}
	}
	if errs := s.MarkDeliveredBatch(ctx, nil); len(errs) != 0 {
		t.Fatalf("empty batch: %v", errs)
	}
	if users, n, err := s.DeliveryState(ctx, "nope", true); err != nil || n != 0 || len(users) != 0 {
		t.Fatalf("unknown message: %v %d %v", users, n, err)
	}
}

// One batch gives each recipient consecutive positions in the batch's
// order; a later batch continues after them.
func batchTakesConsecutivePositions(t *testing.T, b Backend) {
	c := b.NewCommitter()
	ctx := testenv.Context(t, time.Minute)
	res := c.Commit(ctx, []*courierv1.Envelope{
		Envelope("a1", "alice", "bob", "carol"), Envelope("b1", "bea", "bob"), Envelope("a2", "alice", "bob", "carol"),
	})
	NoErrors(t, res)
	if len(res) != 3 || res[0].Stored.Seqs["bob"] != 1 || res[1].Stored.Seqs["bob"] != 2 || res[2].Stored.Seqs["bob"] != 3 ||
		res[2].Stored.Seqs["carol"] != 2 || !res[0].Created || res[1].Stored.Message.GetId() != "b1" {
		t.Fatalf("results %+v", res)
	}
	NoErrors(t, c.Commit(ctx, []*courierv1.Envelope{Envelope("b2", "bea", "bob", "carol")}))
	if got := Positions(t, b.Store, "bob"); !slices.Equal(got, []string{"a1", "b1", "a2", "b2"}) {
		t.Fatalf("bob's inbox %v", got)
	}
	if got := Positions(t, b.Store, "carol"); !slices.Equal(got, []string{"a1", "a2", "b2"}) {
		t.Fatalf("carol's inbox %v", got)
	}
}

// A message stored before (a redelivery) leaves the batch: nothing is
// written for it and it keeps its first positions; the rest of the batch
// is stored. The same id twice in one batch is stored once.
func storedMessagesLeaveTheBatch(t *testing.T, b Backend) {
	c := b.NewCommitter()
	ctx := testenv.Context(t, time.Minute)
	NoErrors(t, c.Commit(ctx, []*courierv1.Envelope{Envelope("old", "alice", "bob")}))
	res := c.Commit(ctx, []*courierv1.Envelope{
		Envelope("new1", "alice", "bob"), Envelope("old", "alice", "bob"), Envelope("new2", "alice", "bob"), Envelope("new2", "alice", "bob"),
	})
	NoErrors(t, res)
	if res[1].Created || res[1].Stored.Seqs["bob"] != 1 {
		t.Fatalf("redelivered message: created=%v seqs %v", res[1].Created, res[1].Stored.Seqs)
	}
	if !res[0].Created || !res[2].Created || res[3].Created || res[3].Stored.Seqs["bob"] != res[2].Stored.Seqs["bob"] {
		t.Fatalf("results %+v", res)
	}
	if got := Positions(t, b.Store, "bob"); !slices.Equal(got, []string{"old", "new1", "new2"}) {
		t.Fatalf("bob's inbox %v", got)
	}
}

// A message too large for one document fails alone, with InvalidArgument;
// its batch-mates are stored in order with consecutive positions.
func rejectedMessageFailsAlone(t *testing.T, b Backend) {
	c := b.NewCommitter()
	ctx := testenv.Context(t, time.Minute)
	huge := Envelope("huge", "alice", "bob")
	huge.Payload = []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	envs := []*courierv1.Envelope{
		Envelope("m1", "alice", "bob"), Envelope("m2", "carol", "bob"), huge, Envelope("m3", "alice", "bob"), Envelope("m4", "carol", "bob"),
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
	if got := Positions(t, b.Store, "bob"); !slices.Equal(got, []string{"m1", "m2", "m3", "m4"}) {
		t.Fatalf("bob's inbox %v", got)
	}
	if _, err := b.Store.Get(ctx, "huge"); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("the refused message: %v", err)
	}
}

// Concurrent committers (several workers) hammering one user: positions
// stay 1..n, each message once, each writer's messages in its order.
func concurrentCommittersLeaveNoGap(t *testing.T, b Backend) {
	ctx := testenv.Context(t, 2*time.Minute)
	const writers, batches, per = 3, 5, 4
	var wg sync.WaitGroup
	for w := range writers {
		c := b.NewCommitter()
		wg.Go(func() {
			for n := range batches {
				var envs []*courierv1.Envelope
				for i := range per {
					envs = append(envs, Envelope(fmt.Sprintf("w%d-%d-%d", w, n, i), fmt.Sprintf("s%d", w), "hot", fmt.Sprintf("u%d", i)))
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
	got := Positions(t, b.Store, "hot")
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
	for w := range writers {
		mine := slices.DeleteFunc(slices.Clone(got), func(id string) bool { return !strings.HasPrefix(id, fmt.Sprintf("w%d-", w)) })
		if !slices.IsSorted(mine) {
			t.Fatalf("writer %d's messages out of order: %v", w, mine)
		}
	}
}
