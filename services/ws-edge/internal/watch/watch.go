// Package watch serves presence to the sessions of this pod that watch
// users (the client frame {"type":"watch","users":[…]}): it keeps who
// watches whom, takes the presence events every pod receives (ephemeral
// kind "presence", about one user each), and writes a
// {"type":"presence","user","online","last_seen"} frame to each watcher
// when the user's online state differs from what that watcher was last
// told.
//
// Coalesced: events are collected and flushed every FlushInterval (so a
// burst about one user is one frame, the latest), and a state a watcher
// already has is not sent again. Going offline is debounced upstream, by
// the presence records' leave delay (pkg/presence), so a reconnect within
// it is no event at all.
package watch

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/courierhq/courier/pkg/online"
)

// MaxUsers bounds one session's watch set.
const MaxUsers = 100

// FlushInterval is how often collected events are written.
const FlushInterval = 200 * time.Millisecond

// Sink is a watching session (session.Session).
type Sink interface {
	SendEphemeral(frame []byte) bool
}

// Counter counts frames by result ("written", "dropped", "unchanged").
type Counter func(result string, n int)

// Registry is this pod's watchers.
type Registry struct {
	count Counter

	mu       sync.Mutex
	watchers map[string]map[Sink]struct{} // subject → its watchers here
	sets     map[Sink]map[string]bool     // watcher → subject → last online state sent
	pending  map[string]Event             // subject → latest event not flushed
}

// Event is one user's presence.
type Event struct {
	User     string     `json:"user"`
	Online   bool       `json:"online"`
	LastSeen *time.Time `json:"last_seen"`
}

// EventOf is the event of st about user.
func EventOf(user string, st online.State) Event {
	ev := Event{User: user, Online: st.Online}
	if !st.LastSeen.IsZero() {
		t := st.LastSeen.UTC().Truncate(time.Second)
		ev.LastSeen = &t
	}
	return ev
}

// Frame is the server frame of ev.
func Frame(ev Event) []byte {
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		Event
	}{"presence", ev})
	return b
}

// New returns an empty Registry; count may be nil.
func New(count Counter) *Registry {
	if count == nil {
		count = func(string, int) {}
	}
	return &Registry{count: count, watchers: map[string]map[Sink]struct{}{},
		sets: map[Sink]map[string]bool{}, pending: map[string]Event{}}
}

// Set replaces s's watch set with users and tells s the state of each
// (initial: users the caller resolved, in the same order).
func (r *Registry) Set(s Sink, users []string, initial []Event) {
	r.mu.Lock()
	r.forgetLocked(s)
	set := make(map[string]bool, len(users))
	for _, u := range users {
		set[u] = false
		if r.watchers[u] == nil {
			r.watchers[u] = map[Sink]struct{}{}
		}
		r.watchers[u][s] = struct{}{}
	}
	if len(users) > 0 {
		r.sets[s] = set
	}
	for _, ev := range initial {
		if _, ok := set[ev.User]; ok {
			set[ev.User] = ev.Online
		}
	}
	r.mu.Unlock()
	for _, ev := range initial {
		r.send(s, ev)
	}
}

// Forget drops s's watch set (the session ended).
func (r *Registry) Forget(s Sink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetLocked(s)
}

func (r *Registry) forgetLocked(s Sink) {
	for u := range r.sets[s] {
		delete(r.watchers[u], s)
		if len(r.watchers[u]) == 0 {
			delete(r.watchers, u)
		}
	}
	delete(r.sets, s)
}

// Watched reports whether anyone here watches user (events about others
// are dropped at once).
func (r *Registry) Watched(user string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.watchers[user]) > 0
}

// Update takes an event; the next flush writes it.
func (r *Registry) Update(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.watchers[ev.User]) > 0 {
		r.pending[ev.User] = ev
	}
}

// Run flushes collected events every FlushInterval until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Flush()
		}
	}
}

// Flush writes every collected event to the watchers whose state differs.
func (r *Registry) Flush() {
	type out struct {
		s  Sink
		ev Event
	}
	var outs []out
	unchanged := 0
	r.mu.Lock()
	for u, ev := range r.pending {
		for s := range r.watchers[u] {
			if last, ok := r.sets[s][u]; ok && last == ev.Online {
				unchanged++
				continue
			}
			r.sets[s][u] = ev.Online
			outs = append(outs, out{s, ev})
		}
	}
	clear(r.pending)
	r.mu.Unlock()
	if unchanged > 0 {
		r.count("unchanged", unchanged)
	}
	for _, o := range outs {
		r.send(o.s, o.ev)
	}
}

func (r *Registry) send(s Sink, ev Event) {
	if s.SendEphemeral(Frame(ev)) {
		r.count("written", 1)
	} else {
		r.count("dropped", 1)
	}
}
