package receipts

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type sink struct {
	mu     sync.Mutex
	frames []string
}

func (s *sink) publish(_ context.Context, users []string, kind string, frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, strings.Join(users, ",")+" "+kind+" "+string(frame))
	return true
}

// Many receipts of one reader coalesce into one "up to" frame naming the
// furthest message; a large send's receipts become one count frame that
// names no user; a sender's own receipts are not sent.
func TestCoalesced(t *testing.T) {
	var s sink
	c := New(s.publish, func(_ context.Context, kind, id string) (int, error) { return 7, nil }, time.Second)
	for i, id := range []string{"m1", "m3", "m2"} {
		c.Add(Receipt{Kind: Read, Sender: "ann", Conversation: "c", MessageID: id, Reader: "bo", ReaderSeq: []int64{1, 3, 2}[i]})
	}
	c.Add(Receipt{Kind: Delivered, Sender: "ann", Conversation: "c", MessageID: "m3", Reader: "bo", ReaderSeq: 3})
	c.Add(Receipt{Kind: Read, Sender: "ann", Conversation: "c", MessageID: "m3", Reader: "ann", ReaderSeq: 3})
	for _, r := range []string{"u1", "u2", "u3"} {
		c.Add(Receipt{Kind: Read, Sender: "ann", Conversation: "big", MessageID: "b1", Reader: r, ReaderSeq: 9, ToCount: 40})
	}
	c.Flush(context.Background())
	slices.Sort(s.frames)
	want := []string{
		`ann receipt {"type":"receipt","kind":"delivered","conversation":"c","message_id":"m3","user":"bo"}`,
		`ann receipt {"type":"receipt","kind":"read","conversation":"big","message_id":"b1","count":7}`,
		`ann receipt {"type":"receipt","kind":"read","conversation":"c","message_id":"m3","user":"bo"}`,
	}
	if !slices.Equal(s.frames, want) {
		t.Fatalf("frames\n%s\nwant\n%s", strings.Join(s.frames, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range s.frames {
		var m map[string]any
		if err := json.Unmarshal([]byte(strings.SplitN(f, " ", 3)[2]), &m); err != nil {
			t.Fatal(err)
		}
		if _, named := m["user"]; named && m["conversation"] == "big" {
			t.Fatalf("a large send's receipt names a user: %s", f)
		}
	}
	s.frames = nil
	c.Flush(context.Background())
	if len(s.frames) != 0 {
		t.Fatalf("a second flush repeats: %v", s.frames)
	}
}

// Run publishes within its interval and flushes on stop.
func TestRunFlushes(t *testing.T) {
	var s sink
	c := New(s.publish, nil, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	c.Add(Receipt{Kind: Read, Sender: "ann", Conversation: "c", MessageID: "m1", Reader: "bo", ReaderSeq: 1})
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.frames)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no frame within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Add(Receipt{Kind: Read, Sender: "ann", Conversation: "c", MessageID: "m2", Reader: "bo", ReaderSeq: 2})
	cancel()
	<-done
	if len(s.frames) < 2 {
		t.Fatalf("stop did not flush: %v", s.frames)
	}
}
