package inbox_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
)

// putLegacyAcks writes acks the way they were kept before
// messages/{id}/deliveries: a "delivered" map on the message.
func putLegacyAcks(t *testing.T, fs *firestore.Client, id string, acks map[string]time.Time) {
	t.Helper()
	if _, err := fs.Collection(inbox.MessagesCollection).Doc(id).Update(testenv.Context(t, time.Minute),
		[]firestore.Update{{Path: "delivered", Value: acks}}); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateLegacyAcks (was the contract's LegacyAcksAreMerged, when the
// old map was still read): acks kept the old way get their deliveries
// documents, with their time, beside acks kept the new way (a newer ack of
// the same user wins); the maps go; a second run finds nothing; messages
// never acknowledged the old way are not written.
func TestMigrateLegacyAcks(t *testing.T) {
	fs := testenv.Firestore(t, testenv.Project(t))
	s := inbox.New(fs)
	ctx := testenv.Context(t, 2*time.Minute)
	big := make([]string, 300) // more acks than one migration transaction holds
	for i := range big {
		big[i] = fmt.Sprintf("u%03d", i)
	}
	inboxtest.MustCommit(t, s, inboxtest.Envelope("m1", "alice", "bob", "carol", "dave"),
		inboxtest.Envelope("m2", "alice", "bob"), inboxtest.Envelope("big", "alice", big...), inboxtest.Envelope("new", "alice", "bob"))
	old := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	putLegacyAcks(t, fs, "m1", map[string]time.Time{"carol": old, "dave": old, "bob": old})
	putLegacyAcks(t, fs, "m2", map[string]time.Time{"bob": old})
	bigAcks := map[string]time.Time{}
	for _, u := range big {
		bigAcks[u] = old
	}
	putLegacyAcks(t, fs, "big", bigAcks)
	// bob acknowledged m1 again after the layout changed: his newer ack stays.
	if err := inboxtest.MarkDelivered(ctx, s, "m1", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := inboxtest.MarkDelivered(ctx, s, "new", "bob"); err != nil {
		t.Fatal(err)
	}
	newBefore := deliveredAt(t, fs, "new", "bob")
	if users, n, err := s.DeliveryState(ctx, "m1", true); err != nil || n != 1 || fmt.Sprint(users) != "[bob]" {
		t.Fatalf("before the migration only the new layout is read: %v %d %v", users, n, err)
	}

	inbox.SetMigrateScanPage(t, 2) // four messages: the scan takes pages
	var seen []string
	m, err := s.MigrateLegacyAcks(ctx, func(id string, written, kept int) { seen = append(seen, id) })
	if err != nil {
		t.Fatal(err)
	}
	if m != (inbox.Migration{Messages: 3, Written: 303, Kept: 1}) || fmt.Sprint(slices.Sorted(slices.Values(seen))) != "[big m1 m2]" {
		t.Fatalf("migration %+v of %v", m, seen)
	}
	for id, want := range map[string]string{"m1": "[bob carol dave]", "m2": "[bob]", "new": "[bob]"} {
		if users, n, err := s.DeliveryState(ctx, id, true); err != nil || fmt.Sprint(users) != want || n != len(users) {
			t.Errorf("%s after the migration: %v %d %v, want %s", id, users, n, err, want)
		}
	}
	if _, n, err := s.DeliveryState(ctx, "big", false); err != nil || n != len(big) {
		t.Errorf("big after the migration: %d acks %v", n, err)
	}
	if got := deliveredAt(t, fs, "m1", "carol"); !got.Equal(old) {
		t.Errorf("carol's ack time %v, want the old map's %v", got, old)
	}
	if got := deliveredAt(t, fs, "m1", "bob"); !got.After(old) {
		t.Errorf("bob's newer ack was overwritten: %v", got)
	}
	if got := deliveredAt(t, fs, "new", "bob"); !got.Equal(newBefore) {
		t.Errorf("a message without legacy acks was written: %v, was %v", got, newBefore)
	}
	for _, id := range []string{"m1", "m2", "big", "new"} {
		snap, err := fs.Collection(inbox.MessagesCollection).Doc(id).Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.Data()["delivered"]; ok {
			t.Errorf("%s still has the delivered map: %v", id, slices.Sorted(maps.Keys(snap.Data())))
		}
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("%s does not read back: %v", id, err)
		}
	}

	again, err := s.MigrateLegacyAcks(ctx, nil)
	if err != nil || again != (inbox.Migration{}) {
		t.Fatalf("a second run: %+v %v, want nothing to do", again, err)
	}
}

// An interrupted run (acks written, map not yet dropped) is finished by
// the next one without rewriting what is there.
func TestMigrateLegacyAcksResumes(t *testing.T) {
	fs := testenv.Firestore(t, testenv.Project(t))
	s := inbox.New(fs)
	ctx := testenv.Context(t, time.Minute)
	inboxtest.MustCommit(t, s, inboxtest.Envelope("m1", "alice", "bob", "carol"))
	old := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	putLegacyAcks(t, fs, "m1", map[string]time.Time{"bob": old, "carol": old})
	// What a run stopped after its writes leaves: bob's document is there.
	if _, err := fs.Collection(inbox.MessagesCollection).Doc("m1").Collection(inbox.DeliveriesCollection).Doc("bob").
		Create(ctx, map[string]any{"delivered_at": old}); err != nil {
		t.Fatal(err)
	}
	m, err := s.MigrateLegacyAcks(ctx, nil)
	if err != nil || m != (inbox.Migration{Messages: 1, Written: 1, Kept: 1}) {
		t.Fatalf("resumed migration %+v %v", m, err)
	}
	if users, _, err := s.DeliveryState(ctx, "m1", true); err != nil || fmt.Sprint(users) != "[bob carol]" {
		t.Fatalf("after: %v %v", users, err)
	}
}

func deliveredAt(t *testing.T, fs *firestore.Client, id, user string) time.Time {
	t.Helper()
	snap, err := fs.Collection(inbox.MessagesCollection).Doc(id).Collection(inbox.DeliveriesCollection).Doc(user).Get(context.Background())
	if err != nil {
		t.Fatalf("%s's ack of %s: %v", user, id, err)
	}
	at, _ := snap.Data()["delivered_at"].(time.Time)
	return at
}
