package inboxtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
)

// The in-memory store keeps the same contract as the Firestore store
// (pkg/inbox TestContract runs the suite on the emulator).
func TestMemoryKeepsTheContract(t *testing.T) {
	inboxtest.Run(t, func(*testing.T) inboxtest.Backend {
		m := inboxtest.NewMemory()
		return inboxtest.Backend{Store: m, NewCommitter: m.NewCommitter}
	})
}

// What Memory returns is a copy, as a read from Firestore is: a test that
// changes a returned message does not change the store.
func TestMemoryReturnsCopies(t *testing.T) {
	m := inboxtest.NewMemory()
	ctx := context.Background()
	st := inboxtest.MustCommit(t, m, inboxtest.Envelope("m1", "alice", "bob"))[0]
	st.Message.To[0], st.Seqs["bob"] = "mallory", 9
	got, err := m.Get(ctx, "m1")
	if err != nil || got.Message.To[0] != "bob" || got.Seqs["bob"] != 1 {
		t.Fatalf("the committed result aliases the store: %v %v %v", got.Message, got.Seqs, err)
	}
	got.Message.Payload[0] = 'X'
	entries, err := m.List(ctx, "bob", 0, 1)
	if err != nil || string(entries[0].Message.Payload) != `{"text":"m1"}` {
		t.Fatalf("a read aliases the store: %v %v", entries, err)
	}
	entries[0].Message.From = "mallory"
	if again, _ := m.List(ctx, "bob", 0, 1); again[0].Message.From != "alice" {
		t.Fatalf("an entry aliases the store: %v", again[0].Message)
	}
}

// Faulty answers from its funcs where set and from Memory elsewhere.
func TestFaultyFallsThroughToMemory(t *testing.T) {
	down := errors.New("down")
	f := inboxtest.NewFaulty()
	inboxtest.MustCommit(t, f, inboxtest.Envelope("m1", "alice", "bob"))
	ctx := context.Background()
	if st, err := f.Get(ctx, "m1"); err != nil || st.Message.Id != "m1" {
		t.Fatalf("get without GetFunc: %v %v", st, err)
	}
	if err := inboxtest.MarkDelivered(ctx, f, "m1", "bob"); err != nil {
		t.Fatalf("ack without MarkDeliveredBatchFunc: %v", err)
	}
	f.GetFunc = func(context.Context, string) (inbox.Stored, error) { return inbox.Stored{}, down }
	f.ListFunc = func(context.Context, string, int64, int) ([]inbox.Entry, error) { return nil, down }
	f.HeadFunc = func(context.Context, string) (int64, error) { return 0, down }
	f.DeliveryStateFunc = func(context.Context, string, bool) ([]string, int, error) { return nil, 0, down }
	f.MarkDeliveredBatchFunc = func(_ context.Context, a []inbox.Ack) []error { return []error{down} }
	if _, err := f.Get(ctx, "m1"); err != down {
		t.Errorf("get: %v", err)
	}
	if _, err := f.List(ctx, "bob", 0, 1); err != down {
		t.Errorf("list: %v", err)
	}
	if _, err := f.Head(ctx, "bob"); err != down {
		t.Errorf("head: %v", err)
	}
	if _, _, err := f.DeliveryState(ctx, "m1", true); err != down {
		t.Errorf("delivery state: %v", err)
	}
	if err := inboxtest.MarkDelivered(ctx, f, "m1", "bob"); err != down {
		t.Errorf("ack: %v", err)
	}
}
