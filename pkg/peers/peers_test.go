package peers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/peers"
	"github.com/courierhq/courier/pkg/signal"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

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
	m, err := d.Members(context.Background(), "bob", wire.DeriveConversationID([]string{"carol", "bob", "dave"}))
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
	if m, err := d.Members(ctx, "dave", wire.DeriveConversationID([]string{"bob", "carol", "dave"})); err != nil || len(m) != 3 {
		t.Fatalf("members %v, %v", m, err)
	}
	// alice only sent (to bob): her own messages count too.
	if ok, err := d.Shares(ctx, "alice", []string{"bob", "carol"}); err != nil || !ok["bob"] || ok["carol"] {
		t.Fatalf("alice shares %v, %v: want bob only", ok, err)
	}
	if _, err := d.Members(ctx, "alice", wire.DeriveConversationID([]string{"alice", "bob"})); err != nil {
		t.Fatalf("alice in her conversation with bob: %v", err)
	}
}

// countingStore is the real store, counting the summary reads.
type countingStore struct {
	*inbox.Store
	exists int
}

func (c *countingStore) ConversationsExist(ctx context.Context, user string, ids []string) (map[string]bool, error) {
	c.exists++
	return c.Store.ConversationsExist(ctx, user, ids)
}

// recentOnly is the store seen as the recent view alone (what peers read
// before conversations were stored).
type recentOnly struct{ s *inbox.Store }

func (r recentOnly) RecentParties(ctx context.Context, user string, limit int) ([]inbox.Party, error) {
	return r.s.RecentParties(ctx, user, limit)
}

func (r recentOnly) SentParties(ctx context.Context, user string, limit int) ([]inbox.Party, error) {
	return r.s.SentParties(ctx, user, limit)
}

// On the emulator: a one-to-one conversation older than the recent view
// (alice wrote to bob once, then carol wrote 210 messages to bob) still
// lets bob watch alice and names its members: its stored summary says so,
// one batched read for every user asked about, cached. The recent view
// alone (the old rule) says no. A group send over the recipient-list
// bound has its members from the stored message's whole list.
func TestOldOneToOneConversationStillShared(t *testing.T) {
	project := testenv.Project(t)
	store := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, 2*time.Minute)
	inboxtest.MustCommit(t, store, inboxtest.Envelope("old-1", "alice", "bob"))
	c := store.NewCommitter(inbox.CommitterOptions{})
	for b := range 6 {
		var envs []*courierv1.Envelope
		for i := range 35 {
			envs = append(envs, inboxtest.Envelope(fmt.Sprintf("carol-%d-%d", b, i), "carol", "bob"))
		}
		for _, r := range c.Commit(ctx, envs) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	big := inboxtest.Envelope("big-1", "carol")
	big.ConversationId = "team-big"
	for i := range 17 {
		big.Recipients = append(big.Recipients, fmt.Sprintf("member%02d", i))
	}
	big.Recipients = append(big.Recipients, "bob")
	inboxtest.MustCommit(t, store, big)

	// The old rule misses alice: 211 newer entries in bob's inbox.
	old, err := peers.New(recentOnly{store}, peers.Options{}).Shares(ctx, "bob", []string{"alice"})
	if err != nil || old["alice"] {
		t.Fatalf("recent view alone: shares(bob, alice) = %v, %v; want false (the entry is older than 200)", old, err)
	}

	cs := &countingStore{Store: store}
	d := peers.New(cs, peers.Options{})
	got, err := d.Shares(ctx, "bob", []string{"alice", "carol", "zed", "member03", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"alice": true, "carol": true, "zed": false, "member03": false, "bob": true}
	for u, w := range want {
		if got[u] != w {
			t.Errorf("shares(bob, %s) = %v, want %v", u, got[u], w)
		}
	}
	if cs.exists != 1 {
		t.Errorf("%d summary reads for one Shares, want 1 (batched)", cs.exists)
	}
	if again, err := d.Shares(ctx, "bob", []string{"alice", "zed"}); err != nil || !again["alice"] || again["zed"] || cs.exists != 1 {
		t.Errorf("second Shares: %v, %v, %d summary reads in all; want alice only, from the cache", again, err, cs.exists)
	}
	// And the other way round: alice's summary of the conversation.
	if ok, err := d.Shares(ctx, "alice", []string{"bob"}); err != nil || !ok["bob"] {
		t.Errorf("shares(alice, bob) = %v, %v", ok, err)
	}

	oneToOne := wire.DeriveConversationID([]string{"alice", "bob"})
	if m, err := d.Members(ctx, "bob", oneToOne); err != nil || !slices.Equal(m, []string{"alice", "bob"}) {
		t.Errorf("members of the old one-to-one for bob: %v, %v", m, err)
	}
	if _, err := d.Members(ctx, "carol", oneToOne); !errors.Is(err, signal.ErrNotMember) {
		t.Errorf("carol asking for alice and bob's conversation: %v, want ErrNotMember", err)
	}
	m, err := d.Members(ctx, "bob", "team-big")
	if err != nil || len(m) != 19 || !slices.Contains(m, "carol") || !slices.Contains(m, "member16") || !slices.Contains(m, "bob") {
		t.Errorf("members of the large send's conversation for bob: %v, %v; want carol, bob and the 17 others", m, err)
	}
	if _, err := d.Members(ctx, "zed", "team-big"); !errors.Is(err, signal.ErrNotMember) {
		t.Errorf("zed asking for team-big: %v, want ErrNotMember", err)
	}
}
