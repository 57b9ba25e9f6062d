package watch

import (
	"encoding/json"
	"sync"
	"testing"
	"time"
)

type sink struct {
	mu     sync.Mutex
	frames []Event
}

func (s *sink) SendEphemeral(b []byte) bool {
	var ev Event
	_ = json.Unmarshal(b, &ev)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, ev)
	return true
}

// Events between two flushes are one frame, the latest; a state the
// watcher has already is not sent again; nobody hears of users they do not
// watch; a forgotten watcher hears nothing more.
func TestCoalescedAndDeduplicated(t *testing.T) {
	r := New(nil)
	a, b := &sink{}, &sink{}
	now := time.Now()
	r.Set(a, []string{"alice", "carol"}, []Event{{User: "alice"}, {User: "carol"}})
	r.Set(b, []string{"carol"}, nil)
	if len(a.frames) != 2 || len(b.frames) != 0 {
		t.Fatalf("initial frames %v %v", a.frames, b.frames)
	}
	for i := range 5 { // alice flaps: online, offline, online, …, online
		r.Update(Event{User: "alice", Online: i%2 == 0})
	}
	r.Update(Event{User: "dave", Online: true}) // watched by nobody
	r.Flush()
	if len(a.frames) != 3 || a.frames[2].User != "alice" || !a.frames[2].Online {
		t.Fatalf("after the flush: %+v", a.frames)
	}
	r.Update(Event{User: "alice", Online: true}) // unchanged
	r.Update(Event{User: "carol", Online: false, LastSeen: &now})
	r.Flush()
	if len(a.frames) != 3 {
		t.Fatalf("unchanged states were sent: %+v", a.frames)
	}
	r.Update(Event{User: "carol", Online: true})
	r.Flush()
	if len(a.frames) != 4 || len(b.frames) != 1 || !b.frames[0].Online {
		t.Fatalf("carol online: %+v %+v", a.frames, b.frames)
	}
	r.Forget(a)
	r.Update(Event{User: "carol", Online: false})
	r.Flush()
	if len(a.frames) != 4 || len(b.frames) != 2 || r.Watched("alice") {
		t.Fatalf("after Forget: %+v %+v", a.frames, b.frames)
	}
}
