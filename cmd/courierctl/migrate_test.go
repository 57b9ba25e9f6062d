package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
)

// TestMigrateAcksCommand runs `courierctl migrate-acks` twice on the
// emulator: the first run moves an old-layout message's acks into
// deliveries and drops its map, the second finds nothing to do.
func TestMigrateAcksCommand(t *testing.T) {
	project := testenv.Project(t)
	fs := testenv.Firestore(t, project)
	t.Setenv("GOOGLE_CLOUD_PROJECT", project)
	ctx := testenv.Context(t, time.Minute)
	s := inbox.New(fs)
	inboxtest.MustCommit(t, s, inboxtest.Envelope("m1", "alice", "bob", "carol"))
	if _, err := fs.Collection(inbox.MessagesCollection).Doc("m1").Update(ctx,
		[]firestore.Update{{Path: "delivered", Value: map[string]time.Time{"bob": time.Now(), "carol": time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	if _, n, err := s.DeliveryState(ctx, "m1", false); err != nil || n != 0 {
		t.Fatalf("before: %d acks %v", n, err)
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"migrate-acks", "-v"}, &out, &errOut); err != nil {
		t.Fatalf("migrate-acks: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "m1: 2 acks moved") || !strings.Contains(out.String(), "1 messages migrated: 2 deliveries documents written") {
		t.Errorf("first run printed %q", out.String())
	}
	if users, n, err := s.DeliveryState(ctx, "m1", true); err != nil || n != 2 || strings.Join(users, ",") != "bob,carol" {
		t.Errorf("after: %v %d %v", users, n, err)
	}
	snap, err := fs.Collection(inbox.MessagesCollection).Doc("m1").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Data()["delivered"]; ok {
		t.Error("the delivered map is still on the message")
	}
	out.Reset()
	if err := run([]string{"migrate-acks"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "0 messages migrated") {
		t.Errorf("second run: %v %q", err, out.String())
	}
}
