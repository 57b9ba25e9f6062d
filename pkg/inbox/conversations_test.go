package inbox_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Paging a conversation backward from the newest page, and forward from a
// cursor, while messages keep arriving: every message of the conversation
// is seen exactly once in each direction, in order, and no message of
// another conversation shows up.
func TestConversationPagingWhileMessagesArrive(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, 2*time.Minute)
	c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100})
	conv := wire.DeriveConversationID([]string{"ann", "ben"})
	send := func(i int) {
		from, to := "ann", "ben"
		if i%3 == 0 {
			from, to = "ben", "ann"
		}
		other := inboxtest.Envelope(fmt.Sprintf("x%03d", i), "cat", "ann") // another conversation, interleaved
		inboxtest.NoErrors(t, c.Commit(ctx, []*courierv1.Envelope{inboxtest.Envelope(fmt.Sprintf("m%03d", i), from, to), other}))
	}
	for i := range 30 {
		send(i)
	}
	// Writers keep going while the reader pages.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 30; i < 60; i++ {
			send(i)
		}
	})
	// Backward: newest page, then before= the first item's cursor.
	var back []string
	page, err := s.ListConversation(ctx, "ann", conv, inbox.ConversationPageReq{Limit: 7})
	if err != nil {
		t.Fatal(err)
	}
	newestSeq := page.Entries[len(page.Entries)-1].Seq
	for {
		ids := []string{}
		for _, e := range page.Entries {
			if e.Message.ConversationId != conv {
				t.Fatalf("entry %s of conversation %q in %s's page", e.Message.Id, e.Message.ConversationId, conv)
			}
			ids = append(ids, e.Message.Id)
		}
		back = append(ids, back...)
		if !page.More {
			break
		}
		page, err = s.ListConversation(ctx, "ann", conv, inbox.ConversationPageReq{Before: page.Entries[0].Seq, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, id := range back {
		if id != fmt.Sprintf("m%03d", n) {
			t.Fatalf("backward pages %v: gap or repeat at %d", back, n)
		}
		n++
	}
	// Forward from the newest page seen, while writers still write, until
	// all 60 were seen.
	wg.Wait()
	after := newestSeq
	for n < 60 {
		page, err := s.ListConversation(ctx, "ann", conv, inbox.ConversationPageReq{After: after, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			if want := fmt.Sprintf("m%03d", n); e.Message.Id != want {
				t.Fatalf("forward page: %s, want %s", e.Message.Id, want)
			}
			if out := e.Message.From == "ann"; e.Message.Outgoing != out {
				t.Fatalf("%s from %s: outgoing %v in ann's inbox", e.Message.Id, e.Message.From, e.Message.Outgoing)
			}
			n++
			after = e.Seq
		}
		if len(page.Entries) == 0 {
			t.Fatalf("forward paging stalled at %d of 60", n)
		}
	}
}

// The conversation list: most recent first, the last message, unread
// counts that leave out the user's own messages and follow the read
// marker; a read marker that never moves back, under concurrent posts; an
// outsider sees nothing.
func TestConversationListAndReadMarkers(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, 2*time.Minute)
	c := s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100})
	group := inboxtest.Envelope("g1", "dan", "eve", "fay")
	group.ConversationId = "book-club"
	commit := func(envs ...*courierv1.Envelope) {
		inboxtest.NoErrors(t, c.Commit(ctx, envs))
	}
	commit(inboxtest.Envelope("p1", "dan", "eve"), group)
	commit(inboxtest.Envelope("p2", "eve", "dan"))
	commit(inboxtest.Envelope("p3", "dan", "eve")) // one batch each, within SummaryInterval: the summary may lag
	g2 := inboxtest.Envelope("g2", "fay", "dan", "eve")
	g2.ConversationId = "book-club"
	commit(g2)
	dm := wire.DeriveConversationID([]string{"dan", "eve"})

	list := func(user string) inbox.ConversationPage {
		p, err := s.ListConversations(ctx, user, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	describe := func(p inbox.ConversationPage) string {
		var out []string
		for _, c := range p.Conversations {
			out = append(out, fmt.Sprintf("%s:%s:%d", c.ID, c.Last.Message.Id, c.UnreadCount))
		}
		return fmt.Sprint(out)
	}
	if got, want := describe(list("eve")), fmt.Sprint([]string{"book-club:g2:2", dm + ":p3:2"}); got != want {
		t.Fatalf("eve's conversations %s, want %s", got, want)
	}
	if got, want := describe(list("dan")), fmt.Sprint([]string{"book-club:g2:1", dm + ":p3:1"}); got != want {
		t.Fatalf("dan's conversations %s, want %s", got, want)
	}
	if p := list("zed"); len(p.Conversations) != 0 {
		t.Fatalf("an outsider lists %v", describe(p))
	}
	if p, err := s.ListConversation(ctx, "zed", dm, inbox.ConversationPageReq{Limit: 10}); err != nil || len(p.Entries) != 0 {
		t.Fatalf("an outsider reads %v %v", p.Entries, err)
	}
	// Paged listing: one per page, nothing repeated.
	p1, err := s.ListConversations(ctx, "eve", 0, 1)
	if err != nil || len(p1.Conversations) != 1 || p1.Next == "" {
		t.Fatalf("first page %v %v", describe(p1), err)
	}
	next, _ := inbox.DecodeCursor(p1.Next)
	p2, err := s.ListConversations(ctx, "eve", next, 1)
	if err != nil || len(p2.Conversations) != 1 || p2.Conversations[0].ID == p1.Conversations[0].ID || p2.Next != "" {
		t.Fatalf("second page %v next %q %v", describe(p2), p2.Next, err)
	}

	// Eve reads the direct chat up to p3, concurrently with older cursors.
	page, err := s.ListConversation(ctx, "eve", dm, inbox.ConversationPageReq{Limit: 10})
	if err != nil || len(page.Entries) != 3 {
		t.Fatalf("eve's direct chat %v %v", page.Entries, err)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			e := page.Entries[i%3]
			if _, err := s.MarkRead(ctx, "eve", dm, e.Seq); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st, err := s.MarkRead(ctx, "eve", dm, page.Entries[0].Seq) // older: stays
	if err != nil || st.Moved || st.ReadSeq != page.Entries[2].Seq || st.Unread != 0 {
		t.Fatalf("read marker after concurrent posts and an older one: %+v %v, want at %d", st, err, page.Entries[2].Seq)
	}
	if got, want := describe(list("eve")), fmt.Sprint([]string{"book-club:g2:2", dm + ":p3:0"}); got != want {
		t.Fatalf("eve's conversations after reading %s, want %s", got, want)
	}
	// Read counts: p3 was read by eve, g2 by nobody yet.
	stored, err := s.Get(ctx, "p3")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.ReadCount(ctx, stored); err != nil || n != 1 {
		t.Fatalf("p3 read by %d (%v), want 1", n, err)
	}
	stored, _ = s.Get(ctx, "g2")
	if n, err := s.ReadCount(ctx, stored); err != nil || n != 0 {
		t.Fatalf("g2 read by %d (%v), want 0", n, err)
	}
}
