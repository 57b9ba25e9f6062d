package keylock

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestExcludesPerKey(t *testing.T) {
	l := New()
	var inside [3]atomic.Int32
	var wg sync.WaitGroup
	sets := [][]string{{"a", "b"}, {"b", "c"}, {"c", "a"}, {"a"}, {"c", "b", "a"}}
	idx := map[string]int{"a": 0, "b": 1, "c": 2}
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set := sets[i%len(sets)]
			unlock, err := l.Lock(context.Background(), set...)
			if err != nil {
				t.Error(err)
				return
			}
			for _, k := range set {
				if n := inside[idx[k]].Add(1); n != 1 {
					t.Errorf("%d holders of %s", n, k)
				}
			}
			time.Sleep(50 * time.Microsecond)
			for _, k := range set {
				inside[idx[k]].Add(-1)
			}
			unlock()
		}()
	}
	wg.Wait() // a deadlock (locks taken in different orders) hangs here
	if l.Len() != 0 {
		t.Fatalf("%d keys left behind", l.Len())
	}
}

func TestDistinctKeysDoNotWait(t *testing.T) {
	l := New()
	unlockA, _ := l.Lock(context.Background(), "a")
	defer unlockA()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlockB, err := l.Lock(ctx, "b", "b") // duplicates are locked once
	if err != nil {
		t.Fatalf("b waited on a: %v", err)
	}
	unlockB()
	unlockB() // idempotent
}

func TestLockGivesUpOnContext(t *testing.T) {
	l := New()
	unlock, _ := l.Lock(context.Background(), "b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(ctx, "a", "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// "a" was taken and must have been released on the way out.
	unlockA, err := l.Lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	unlockA()
	unlock()
	if l.Len() != 0 {
		t.Fatalf("%d keys left behind", l.Len())
	}
}
