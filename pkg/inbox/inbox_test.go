package inbox_test

import (
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
)

// TestContract runs the inbox store's contract suite on the Firestore
// emulator; inboxtest runs the same suite on its in-memory store.
func TestContract(t *testing.T) {
	inboxtest.Run(t, func(t *testing.T) inboxtest.Backend {
		fs := testenv.Firestore(t, testenv.Project(t))
		s := inbox.New(fs)
		return inboxtest.Backend{
			Store:        s,
			NewCommitter: func() inboxtest.Committer { return s.NewCommitter(inbox.CommitterOptions{HeadCacheSize: 100}) },
		}
	})
}

// An ack is a document of its own: the message document itself is not
// written by acks (a popular message would be a hot document).
func TestAcksDoNotWriteTheMessage(t *testing.T) {
	fs := testenv.Firestore(t, testenv.Project(t))
	s := inbox.New(fs)
	ctx := testenv.Context(t, time.Minute)
	inboxtest.MustCommit(t, s, inboxtest.Envelope("m1", "alice", "bob", "carol"))
	before, err := fs.Collection(inbox.MessagesCollection).Doc("m1").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := inboxtest.MarkDelivered(ctx, s, "m1", "bob"); err != nil {
		t.Fatal(err)
	}
	snap, err := fs.Collection(inbox.MessagesCollection).Doc("m1").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Data()["delivered"]; ok || !snap.UpdateTime.Equal(before.UpdateTime) {
		t.Fatal("an ack wrote the message document")
	}
	ack, err := fs.Collection(inbox.MessagesCollection).Doc("m1").Collection(inbox.DeliveriesCollection).Doc("bob").Get(ctx)
	if err != nil || ack.Data()["delivered_at"] == nil {
		t.Fatalf("bob's ack document: %v %v", ack, err)
	}
}
