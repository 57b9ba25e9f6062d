package inbox_test

import (
	"errors"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/testenv"
)

func TestFannedOutMark(t *testing.T) {
	project := testenv.Project(t)
	s := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)

	if _, err := s.FannedOut(ctx, "nope"); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("unknown message: %v", err)
	}
	if err := s.MarkFannedOut(ctx, "nope"); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("mark unknown message: %v", err)
	}
	if _, _, err := s.Commit(ctx, envelope("f1", "alice", "bob")); err != nil {
		t.Fatal(err)
	}
	if done, err := s.FannedOut(ctx, "f1"); err != nil || done {
		t.Fatalf("fresh message fanned out=%v err=%v", done, err)
	}
	if err := s.MarkFannedOut(ctx, "f1"); err != nil {
		t.Fatal(err)
	}
	if done, err := s.FannedOut(ctx, "f1"); err != nil || !done {
		t.Fatalf("after mark fanned out=%v err=%v", done, err)
	}
	// The mark must not disturb reading the message back.
	st, err := s.Get(ctx, "f1")
	if err != nil || st.Message.Id != "f1" || st.Seqs["bob"] != 1 {
		t.Fatalf("get after mark: %+v %v", st, err)
	}
	if _, created, err := s.Commit(ctx, envelope("f1", "alice", "bob")); err != nil || created {
		t.Fatalf("recommit after mark: created=%v err=%v", created, err)
	}
}
