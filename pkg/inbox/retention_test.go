package inbox_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
)

// With INBOX_RETENTION, entries carry expire_at; a cursor behind what is
// retained (its next entry deleted by the TTL policy, or past expire_at
// and not deleted yet) answers ErrCursorExpired instead of a page with a
// silent gap; the newest page and a cursor within retention still read.
func TestRetentionExpiresCursors(t *testing.T) {
	fs := testenv.Firestore(t, testenv.Project(t))
	ctx := testenv.Context(t, time.Minute)
	keep := inbox.New(fs).WithRetention(time.Hour)
	for i := range 4 {
		inboxtest.MustCommit(t, keep, inboxtest.Envelope(fmt.Sprintf("r%d", i), "kim", "lou"))
	}
	page, err := keep.ListPage(ctx, "lou", 1, inbox.PageLimit{Items: 10})
	if err != nil || len(page.Entries) != 3 || page.Entries[0].ExpireAt == nil ||
		page.Entries[0].ExpireAt.Sub(page.Entries[0].Message.StoredAt.AsTime()) != time.Hour {
		t.Fatalf("within retention: %v %v", page.Entries, err)
	}
	// The TTL policy deleted entries 1 and 2.
	for _, seq := range []string{"00000000000000000001", "00000000000000000002"} {
		if _, err := fs.Collection("users").Doc("lou").Collection("inbox").Doc(seq).Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := keep.ListPage(ctx, "lou", 1, inbox.PageLimit{Items: 10}); !errors.Is(err, inbox.ErrCursorExpired) {
		t.Fatalf("cursor 1 after entry 2 was deleted: %v, want ErrCursorExpired", err)
	}
	if p, err := keep.ListPage(ctx, "lou", 2, inbox.PageLimit{Items: 10}); err != nil || len(p.Entries) != 2 {
		t.Fatalf("cursor 2 (its next entry retained): %v %v", p.Entries, err)
	}
	dm := wire.DeriveConversationID([]string{"kim", "lou"})
	if _, err := keep.ListConversation(ctx, "lou", dm, inbox.ConversationPageReq{Before: 2, Limit: 5}); !errors.Is(err, inbox.ErrCursorExpired) {
		t.Fatalf("history before a deleted entry: %v, want ErrCursorExpired", err)
	}
	if p, err := keep.ListConversation(ctx, "lou", dm, inbox.ConversationPageReq{Limit: 5}); err != nil || len(p.Entries) != 2 {
		t.Fatalf("the newest page: %v %v", p.Entries, err)
	}
	// Past expire_at but not deleted yet (TTL deletes up to a day late).
	short := inbox.New(fs).WithRetention(time.Nanosecond)
	for i := range 2 {
		inboxtest.MustCommit(t, short, inboxtest.Envelope(fmt.Sprintf("q%d", i), "kim", "max"))
	}
	if _, err := short.ListPage(ctx, "max", 1, inbox.PageLimit{Items: 10}); !errors.Is(err, inbox.ErrCursorExpired) {
		t.Fatalf("cursor before an entry past expire_at: %v, want ErrCursorExpired", err)
	}
	// Without retention nothing expires.
	if p, err := inbox.New(fs).ListPage(ctx, "max", 1, inbox.PageLimit{Items: 10}); err != nil || len(p.Entries) != 1 {
		t.Fatalf("without retention: %v %v", p.Entries, err)
	}
}
