package inbox_test

import (
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/testenv"
)

func TestHead(t *testing.T) {
	s := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, time.Minute)
	if h, err := s.Head(ctx, "bob"); err != nil || h != 0 {
		t.Fatalf("empty inbox head = %d, %v", h, err)
	}
	for _, id := range []string{"m1", "m2"} {
		if _, _, err := s.Commit(ctx, envelope(id, "alice", "bob")); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := s.Head(ctx, "bob"); err != nil || h != 2 {
		t.Fatalf("head = %d, %v; want 2", h, err)
	}
}
