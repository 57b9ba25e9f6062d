package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/harness/wsclient"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestThousandMessageConversationEveryViewConsistent: alice (two sessions,
// on two edges) and bob (one session) exchange 1,000 messages both ways
// through POST /v1/messages, then every view of the conversation agrees:
// each session got every message of its user exactly once, in inbox order
// (alice's and bob's own copies included); each inbox (GET /v1/messages)
// holds the 1,000; the history paged backward from the newest page and
// forward from the first is the inbox, with no gap and no repeat; GET
// /v1/conversations names the last message sent and the right unread
// counts before and after the read marker moves (forward only); and the
// delivered and read receipts reach the sender's sessions.
func TestThousandMessageConversationEveryViewConsistent(t *testing.T) {
	const n = 1000
	c := env.NewCluster(t, harness.Options{Edges: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	gw := c.GatewayURL()
	a1 := mustDial(t, ctx, c.Edges[0].Addr, c.Token("alice"), "")
	a2 := mustDial(t, ctx, c.Edges[1].Addr, c.Token("alice"), "")
	b := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")
	waitSubscribed(t, c)
	sessions := map[string]*harness.WSClient{"alice@edge-a": a1, "alice@edge-b": a2, "bob@edge-a": b}
	for name, s := range sessions {
		if _, err := s.WaitFrames("synced", 1, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	sender := func(i int) string {
		if i%2 == 0 {
			return "alice"
		}
		return "bob"
	}

	// The first n-1 from a few concurrent senders each way; the last one
	// alone once the others are stored, so "the last sent" is defined.
	ids := make([]string, n)
	send := func(i int) error {
		from, to := sender(i), "bob"
		if from == "bob" {
			to = "alice"
		}
		r, err := harness.Send(ctx, gw, c.Token(from), []string{to}, map[string]any{"i": i}, fmt.Sprintf("conv-%d", i))
		if err != nil {
			return err
		}
		if r.Status != http.StatusAccepted {
			return fmt.Errorf("send %d: %d %s", i, r.Status, r.Body)
		}
		ids[i] = r.ID
		return nil
	}
	start := time.Now()
	next := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := send(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
feed:
	for i := range n - 1 {
		select {
		case next <- i:
		case err := <-errs:
			t.Error(err)
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	accepted := time.Since(start)
	for name, s := range sessions {
		if err := s.WaitMessages(n-1, 90*time.Second); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := send(n - 1); err != nil {
		t.Fatal(err)
	}
	for name, s := range sessions {
		if err := s.WaitMessages(n, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	t.Logf("%d messages accepted in %s (%.0f/s), all %d sessions had them after %s",
		n-1, accepted.Round(time.Millisecond), float64(n-1)/accepted.Seconds(), len(sessions), time.Since(start).Round(time.Millisecond))
	lastID := ids[n-1]
	byID := map[string]int{}
	for i, id := range ids {
		byID[id] = i
	}

	// The inboxes: the 1,000 each, once each.
	inboxes := map[string][]harness.InboxEntry{}
	for _, user := range []string{"alice", "bob"} {
		entries, err := harness.Inbox(ctx, gw, c.Token(user), "")
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if _, ok := byID[e.ID]; !ok || seen[e.ID] {
				t.Fatalf("%s's inbox: %s is unknown or repeated", user, e.ID)
			}
			seen[e.ID] = true
			if want := sender(byID[e.ID]); e.From != want {
				t.Fatalf("%s's inbox: message %d from %q, want %q", user, byID[e.ID], e.From, want)
			}
		}
		if len(seen) != n {
			t.Fatalf("%s's inbox holds %d distinct messages, want %d", user, len(seen), n)
		}
		if entries[n-1].ID != lastID {
			t.Fatalf("%s's inbox ends with message %d, want the last sent (%d)", user, byID[entries[n-1].ID], n-1)
		}
		inboxes[user] = entries
	}

	// Each session: exactly the inbox, in its order, with its cursors.
	for name, s := range sessions {
		user := name[:len(name)-len("@edge-a")]
		got := s.Messages()
		want := inboxes[user]
		if len(got) != len(want) {
			t.Fatalf("%s: %d message frames, want %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i].Message.ID != want[i].ID || got[i].Cursor != want[i].Cursor {
				t.Fatalf("%s: frame %d is %s@%s, the inbox has %s@%s there", name, i, got[i].Message.ID, got[i].Cursor, want[i].ID, want[i].Cursor)
			}
		}
	}

	conv := wire.DeriveConversationID([]string{"alice", "bob"})
	type page struct {
		Messages []struct {
			ID     string `json:"id"`
			Cursor string `json:"cursor"`
		} `json:"messages"`
		HasMore    bool   `json:"has_more"`
		PrevCursor string `json:"prev_cursor"`
		NextCursor string `json:"next_cursor"`
	}
	history := func(user string, q url.Values) page {
		t.Helper()
		q.Set("limit", "150")
		status, body, err := harness.Get(ctx, gw+"/v1/conversations/"+conv+"/messages?"+q.Encode(), c.Token(user))
		var p page
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &p) != nil {
			t.Fatalf("%s: GET history %v = %d %s (%v)", user, q, status, body, err)
		}
		return p
	}
	sameAsInbox := func(user, how string, got [][2]string) {
		t.Helper()
		want := inboxes[user]
		if len(got) != len(want) {
			t.Fatalf("%s: history %s has %d messages, the inbox %d", user, how, len(got), len(want))
		}
		for i := range got {
			if got[i][0] != want[i].ID || got[i][1] != want[i].Cursor {
				t.Fatalf("%s: history %s differs from the inbox at %d: %v, want %s@%s", user, how, i, got[i], want[i].ID, want[i].Cursor)
			}
		}
	}
	for _, user := range []string{"alice", "bob"} {
		// Backward: the newest page, then the page before each.
		var pages [][][2]string
		for p, q := history(user, url.Values{}), 0; ; q++ {
			var items [][2]string
			for _, m := range p.Messages {
				items = append(items, [2]string{m.ID, m.Cursor})
			}
			pages = append(pages, items)
			if !p.HasMore || len(p.Messages) == 0 || q > n {
				break
			}
			p = history(user, url.Values{"before": {p.PrevCursor}})
		}
		slices.Reverse(pages)
		sameAsInbox(user, "paged backward", slices.Concat(pages...))
		if len(pages) < 2 {
			t.Fatalf("%s: %d pages of 150 for %d messages", user, len(pages), n)
		}

		// Forward: from the first message, the page after each.
		first := inboxes[user][0]
		items := [][2]string{{first.ID, first.Cursor}}
		for p, q := history(user, url.Values{"after": {first.Cursor}}), 0; ; q++ {
			for _, m := range p.Messages {
				items = append(items, [2]string{m.ID, m.Cursor})
			}
			if !p.HasMore || len(p.Messages) == 0 || q > n {
				break
			}
			p = history(user, url.Values{"after": {p.NextCursor}})
		}
		sameAsInbox(user, "paged forward", items)
	}

	// The conversation list: one conversation, the last message sent, and
	// the unread count (the other side's messages after the marker).
	type summary struct {
		ID          string `json:"id"`
		LastMessage struct {
			ID string `json:"id"`
		} `json:"last_message"`
		LastCursor  string `json:"last_cursor"`
		UnreadCount int    `json:"unread_count"`
		ReadCursor  string `json:"read_cursor"`
	}
	listed := func(user string) summary {
		t.Helper()
		status, body, err := harness.Get(ctx, gw+"/v1/conversations", c.Token(user))
		var l struct {
			Conversations []summary `json:"conversations"`
		}
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &l) != nil || len(l.Conversations) != 1 {
			t.Fatalf("%s: GET /v1/conversations = %d %s (%v), want one conversation", user, status, body, err)
		}
		return l.Conversations[0]
	}
	unreadAfter := func(user string, k int) int {
		u := 0
		for _, e := range inboxes[user][k+1:] {
			if e.From != user {
				u++
			}
		}
		return u
	}
	for _, user := range []string{"alice", "bob"} {
		s := listed(user)
		if s.ID != conv || s.LastMessage.ID != lastID || s.LastCursor != inboxes[user][n-1].Cursor || s.UnreadCount != n/2 {
			t.Fatalf("%s: conversation %+v, want %s, last message %s at %s, %d unread", user, s, conv, lastID, inboxes[user][n-1].Cursor, n/2)
		}
	}
	markRead := func(user string, k int) int {
		t.Helper()
		body := fmt.Sprintf(`{"cursor":%q}`, inboxes[user][k].Cursor)
		status, resp, err := harness.PostJSON(ctx, gw, "/v1/conversations/"+conv+"/read", c.Token(user), body)
		var r struct {
			UnreadCount int `json:"unread_count"`
		}
		if err != nil || status != http.StatusOK || json.Unmarshal(resp, &r) != nil {
			t.Fatalf("%s: read up to %d = %d %s (%v)", user, k, status, resp, err)
		}
		return r.UnreadCount
	}
	// bob reads up to the 600th entry of his inbox; then an older cursor
	// leaves the marker where it is.
	for _, step := range []struct {
		k, want int
	}{{599, unreadAfter("bob", 599)}, {99, unreadAfter("bob", 599)}} {
		if got := markRead("bob", step.k); got != step.want {
			t.Fatalf("bob: read up to %d answers %d unread, want %d", step.k, got, step.want)
		}
		if s := listed("bob"); s.UnreadCount != step.want || s.ReadCursor != inboxes["bob"][599].Cursor {
			t.Fatalf("bob after reading up to %d: listed %+v, want %d unread, read cursor %s", step.k, s, step.want, inboxes["bob"][599].Cursor)
		}
	}
	if s := listed("alice"); s.UnreadCount != n/2 {
		t.Fatalf("alice: %d unread after bob read, want %d (markers are per user)", s.UnreadCount, n/2)
	}

	// Receipts reach the sender's sessions: bob's session acks alice's last
	// message (delivered), and bob reads to the end (read), each "up to"
	// that message.
	var lastFromAlice string // in bob's inbox order (the sends were concurrent)
	for _, e := range inboxes["bob"] {
		if e.From == "alice" {
			lastFromAlice = e.ID
		}
	}
	if err := wsclient.Ack(ctx, b.Conn, lastFromAlice); err != nil {
		t.Fatal(err)
	}
	if got := markRead("bob", n-1); got != 0 {
		t.Fatalf("bob read to the end: %d unread, want 0", got)
	}
	for _, name := range []string{"alice@edge-a", "alice@edge-b"} {
		s := sessions[name]
		for _, kind := range []string{"delivered", "read"} {
			testenv.Eventually(t, 30*time.Second, name+": a "+kind+" receipt from bob up to alice's last message", func() bool {
				for _, f := range s.Raw("receipt") {
					if f["kind"] == kind && f["user"] == "bob" && f["conversation"] == conv && f["message_id"] == lastFromAlice {
						return true
					}
				}
				return false
			})
		}
	}
	if _, err := b.WaitFrames("read", 1, 30*time.Second); err != nil {
		t.Fatalf("bob's session: the read frame of his own marker: %v", err)
	}
	for _, f := range b.Raw("receipt") {
		if f["user"] == "bob" {
			t.Fatalf("bob's session got a receipt of his own reading: %v", f)
		}
	}
}
