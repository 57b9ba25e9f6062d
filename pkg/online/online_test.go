package online_test

import (
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/testenv"
)

// On the Firestore emulator: a user held by a pod that beats is online; a
// user held only by a pod whose heartbeat is stale is offline, last seen
// at that beat; a user whose last pod let go is offline, last seen then;
// a user never seen is offline with no last seen. Stale names the dead pod
// with a cutoff after its last beat.
func TestStates(t *testing.T) {
	fs := testenv.Firestore(t, testenv.Project(t))
	ctx := testenv.Context(t, time.Minute)
	if err := edges.New(fs).Beat(ctx, "live", "sub-live", time.Now()); err != nil {
		t.Fatal(err)
	}
	deadBeat := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	if _, err := fs.Collection(edges.Collection).Doc("dead").Set(ctx, map[string]any{
		"subscription": "sub-dead", "heartbeat": deadBeat, "started_at": deadBeat}); err != nil {
		t.Fatal(err)
	}
	tab := presence.NewTable(fs)
	for user, pod := range map[string]string{"alice": "live", "bob": "dead", "carol": "live"} {
		if err := tab.Join(ctx, user, pod); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.Leave(ctx, "carol", "live"); err != nil {
		t.Fatal(err)
	}
	r := online.NewReader(fs, online.Options{StaleAfter: 30 * time.Second})
	st, err := r.States(ctx, []string{"alice", "bob", "carol", "dave"})
	if err != nil {
		t.Fatal(err)
	}
	if !st["alice"].Online {
		t.Errorf("alice: %+v, want online", st["alice"])
	}
	if st["bob"].Online || !st["bob"].LastSeen.Equal(deadBeat) {
		t.Errorf("bob: %+v, want offline, last seen %s", st["bob"], deadBeat)
	}
	if st["carol"].Online || time.Since(st["carol"].LastSeen) > time.Minute {
		t.Errorf("carol: %+v, want offline, last seen just now", st["carol"])
	}
	if st["dave"].Online || !st["dave"].LastSeen.IsZero() {
		t.Errorf("dave: %+v, want offline, never seen", st["dave"])
	}
	stale, err := r.Stale(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, live := stale["live"]; live || !stale["dead"].After(deadBeat) || len(stale) != 1 {
		t.Fatalf("stale %v", stale)
	}
}
