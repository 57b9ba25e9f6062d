package peers_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/peers"
	"github.com/courierhq/courier/pkg/signal"
	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// The contract's test vector (issue 21): the JS client checks the same.
func TestDerivedIDVector(t *testing.T) {
	if got := peers.DerivedID([]string{"bob", "alice", "bob"}); got != "d.1cb15457d1ddab60e205c0fe3ca2f65d" {
		t.Fatalf("DerivedID(alice, bob) = %s", got)
	}
}

type fakeInbox struct {
	parties map[string][]inbox.Party
	reads   int
}

func (f *fakeInbox) RecentParties(_ context.Context, user string, _ int) ([]inbox.Party, error) {
	f.reads++
	return f.parties[user], nil
}

func TestDirectoryFromRecentInbox(t *testing.T) {
	in := &fakeInbox{parties: map[string][]inbox.Party{
		"bob": {{From: "alice", To: []string{"bob"}}, {From: "carol", To: []string{"bob", "dave"}}, {From: "eve"}},
	}}
	d := peers.New(in, peers.Options{})
	got, err := d.Shares(context.Background(), "bob", []string{"alice", "dave", "eve", "bob", "zed"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"alice": true, "dave": true, "eve": false, "bob": true, "zed": false}
	for u, w := range want {
		if got[u] != w {
			t.Errorf("shares(bob, %s) = %v, want %v", u, got[u], w)
		}
	}
	m, err := d.Members(context.Background(), "bob", peers.DerivedID([]string{"carol", "bob", "dave"}))
	if err != nil || !slices.Equal(m, []string{"bob", "carol", "dave"}) {
		t.Fatalf("members %v, %v", m, err)
	}
	if _, err := d.Members(context.Background(), "bob", "d.nope"); !errors.Is(err, signal.ErrNotMember) {
		t.Fatalf("unknown conversation: %v", err)
	}
	if in.reads != 1 {
		t.Errorf("%d inbox reads, want 1 (cached)", in.reads)
	}
}

// On the emulator: RecentParties reads the sender and recipients of the
// last messages, newest first.
func TestRecentPartiesOnTheEmulator(t *testing.T) {
	project := testenv.Project(t)
	store := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)
	for i, e := range []*courierv1.Envelope{
		{MessageId: "m1", Sender: "alice", Recipients: []string{"bob"}},
		{MessageId: "m2", Sender: "carol", Recipients: []string{"bob", "dave"}},
	} {
		e.Payload, e.ContentType, e.SentAt = []byte(`{"i":1}`), "application/json", timestamppb.Now()
		if _, _, err := inboxtest.Commit(ctx, store, e); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	got, err := store.RecentParties(ctx, "bob", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].From != "carol" || !slices.Equal(got[0].To, []string{"bob", "dave"}) || got[1].From != "alice" {
		t.Fatalf("parties %+v", got)
	}
	d := peers.New(store, peers.Options{})
	if m, err := d.Members(ctx, "dave", peers.DerivedID([]string{"bob", "carol", "dave"})); err != nil || len(m) != 3 {
		t.Fatalf("members %v, %v", m, err)
	}
	// alice only sent (to bob): her own messages count too.
	if ok, err := d.Shares(ctx, "alice", []string{"bob", "carol"}); err != nil || !ok["bob"] || ok["carol"] {
		t.Fatalf("alice shares %v, %v: want bob only", ok, err)
	}
	if _, err := d.Members(ctx, "alice", peers.DerivedID([]string{"alice", "bob"})); err != nil {
		t.Fatalf("alice in her conversation with bob: %v", err)
	}
}
