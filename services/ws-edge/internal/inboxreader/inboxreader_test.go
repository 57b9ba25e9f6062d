package inboxreader_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
)

type noObs struct{}

func (noObs) InboxRead(inboxreader.Purpose, bool, error) {}

// fill gives each user n messages of about size bytes.
func fill(t *testing.T, s *inboxtest.Memory, n, size int, users ...string) {
	t.Helper()
	payload := fmt.Sprintf("%q", strings.Repeat("x", size))
	for _, u := range users {
		for i := range n {
			env := inboxtest.Envelope(fmt.Sprintf("%s-%d", u, i), "sender", u)
			env.Payload = []byte(payload)
			inboxtest.MustCommit(t, s, env)
		}
	}
}

// Pages are cut by bytes, and say whether more follows.
func TestPagesAreBoundedByBytes(t *testing.T) {
	s := inboxtest.NewMemory()
	fill(t, s, 10, 10<<10, "bob")
	r := inboxreader.New(s, inboxreader.Options{Concurrency: 4, PageBytes: 32 << 10, BudgetBytes: 1 << 20}, noObs{})
	ctx := testenv.Context(t, 10*time.Second)
	var after int64
	var got int
	for {
		p, err := r.Read(ctx, inboxreader.CatchUp, "bob", after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) > 3 {
			t.Fatalf("page of %d items of 10 KiB, bound 32 KiB", len(p.Items))
		}
		got += len(p.Items)
		if len(p.Items) > 0 {
			after = p.Items[len(p.Items)-1].Seq
		}
		p.Done()
		if !p.More {
			break
		}
	}
	if got != 10 {
		t.Fatalf("read %d messages, want 10", got)
	}
}

// The pod's budget is held until pages are done: with the budget spent, a
// further read waits, and proceeds once a page is given back.
func TestBudgetHeldUntilPagesAreWritten(t *testing.T) {
	s := inboxtest.NewMemory()
	users := []string{"u1", "u2", "u3"}
	fill(t, s, 5, 10<<10, users...)
	r := inboxreader.New(s, inboxreader.Options{Concurrency: 8, PageBytes: 64 << 10, BudgetBytes: 128 << 10}, noObs{})
	ctx := testenv.Context(t, 10*time.Second)
	p1, err := r.Read(ctx, inboxreader.CatchUp, "u1", 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := r.Read(ctx, inboxreader.CatchUp, "u2", 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	// Two pages of ~51 KiB hold 102 of 128 KiB: a third needs 64 KiB reserved.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = r.Read(short, inboxreader.CatchUp, "u3", 0, 500)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a read beyond the budget: %v, want it to wait (deadline exceeded)", err)
	}
	got := make(chan error, 1)
	go func() {
		p, err := r.Read(ctx, inboxreader.CatchUp, "u3", 0, 500)
		if err == nil {
			p.Done()
		}
		got <- err
	}()
	p1.Done()
	if err := <-got; err != nil {
		t.Fatalf("read after a page was done: %v", err)
	}
	p2.Done()
}

// One user holds at most UserPages pages at once, so others still read.
func TestOneUserHoldsAtMostItsPages(t *testing.T) {
	s := inboxtest.NewMemory()
	fill(t, s, 20, 1<<10, "bob", "carol")
	r := inboxreader.New(s, inboxreader.Options{Concurrency: 8, PageBytes: 4 << 10, BudgetBytes: 1 << 20, UserPages: 2}, noObs{})
	ctx := testenv.Context(t, 10*time.Second)
	var held []inboxreader.Page
	for after := range int64(2) {
		p, err := r.Read(ctx, inboxreader.CatchUp, "bob", after*3, 500)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, p)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := r.Read(short, inboxreader.CatchUp, "bob", 10, 500)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("bob's third page: %v, want it to wait", err)
	}
	p, err := r.Read(ctx, inboxreader.CatchUp, "carol", 0, 500)
	if err != nil || len(p.Items) == 0 {
		t.Fatalf("carol blocked behind bob: %v", err)
	}
	p.Done()
	for _, p := range held {
		p.Done()
	}
	p, err = r.Read(ctx, inboxreader.CatchUp, "bob", 10, 500)
	if err != nil {
		t.Fatalf("bob after his pages were done: %v", err)
	}
	p.Done()
}

// Identical reads share one request and one reservation, released when the
// last of them is done.
func TestSharedReadReleasesOnce(t *testing.T) {
	s := inboxtest.NewMemory()
	fill(t, s, 3, 1<<10, "bob")
	r := inboxreader.New(s, inboxreader.Options{Concurrency: 8, PageBytes: 8 << 10, BudgetBytes: 8 << 10}, noObs{})
	ctx := testenv.Context(t, 10*time.Second)
	for range 50 {
		p, err := r.Read(ctx, inboxreader.Resume, "bob", 0, 500)
		if err != nil {
			t.Fatal(err)
		}
		p.Done()
	}
	// The whole budget is back: a full page can be reserved.
	p, err := r.Read(ctx, inboxreader.Resume, "bob", 1, 500)
	if err != nil {
		t.Fatalf("budget leaked: %v", err)
	}
	p.Done()
}
