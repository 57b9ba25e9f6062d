// Package online answers whether users are online and when they were last
// seen, from the presence records (pkg/presence: which pods hold sessions
// of a user) and the pods' heartbeats (pkg/edges): a user is online while
// a pod whose heartbeat is fresh (younger than StaleAfter) holds a session
// of theirs. A pod that was killed never removes its records; its
// heartbeat goes stale instead, so its users read offline at most
// StaleAfter after its last heartbeat, before anything sweeps the records.
package online

import (
	"context"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/presence"
)

// State is one user's presence as clients see it.
type State struct {
	Online bool
	// LastSeen is now for an online user; for an offline one, when the
	// last pod holding them let go (zero: never seen).
	LastSeen time.Time
}

// Options tune a Reader.
type Options struct {
	// StaleAfter: a pod whose heartbeat is older holds nobody (default 35s,
	// with edges beating every 10s).
	StaleAfter time.Duration
	// PodsTTL is how long the pods' heartbeats are reused (default 2s).
	PodsTTL time.Duration
}

// Reader reads presence. Safe for concurrent use.
type Reader struct {
	fs   *firestore.Client
	pods *edges.Store
	opts Options
	now  func() time.Time

	mu     sync.Mutex
	beats  map[string]time.Time
	readAt time.Time
}

// NewReader returns a Reader on fs.
func NewReader(fs *firestore.Client, o Options) *Reader {
	if o.StaleAfter <= 0 {
		o.StaleAfter = 35 * time.Second
	}
	if o.PodsTTL <= 0 {
		o.PodsTTL = 2 * time.Second
	}
	return &Reader{fs: fs, pods: edges.New(fs), opts: o, now: time.Now}
}

// Heartbeats returns each pod's last heartbeat, read at most every PodsTTL.
func (r *Reader) Heartbeats(ctx context.Context) (map[string]time.Time, error) {
	r.mu.Lock()
	if r.beats != nil && r.now().Sub(r.readAt) < r.opts.PodsTTL {
		b := r.beats
		r.mu.Unlock()
		return b, nil
	}
	r.mu.Unlock()
	pods, err := r.pods.Pods(ctx)
	if err != nil {
		return nil, fmt.Errorf("read pod heartbeats: %w", err)
	}
	beats := make(map[string]time.Time, len(pods))
	for name, p := range pods {
		beats[name] = p.Heartbeat
	}
	r.mu.Lock()
	r.beats, r.readAt = beats, r.now()
	r.mu.Unlock()
	return beats, nil
}

// Stale returns the pods whose heartbeat is older than StaleAfter, each
// with a cutoff: their presence records written before it are the dead
// pod's. A dead pod may have written records after its last beat (up to a
// heartbeat interval, far less than StaleAfter); a pod restarted under the
// same name beats first, so its new records come after it was last seen
// stale (at the earliest last beat + StaleAfter - PodsTTL, as beats are
// cached for PodsTTL).
func (r *Reader) Stale(ctx context.Context) (map[string]time.Time, error) {
	beats, err := r.Heartbeats(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for p, hb := range beats {
		if r.now().Sub(hb) >= r.opts.StaleAfter {
			out[p] = hb.Add(r.opts.StaleAfter - r.opts.PodsTTL)
		}
	}
	return out, nil
}

// States returns the state of each of users in one read of their records
// (users never seen are offline with a zero LastSeen).
func (r *Reader) States(ctx context.Context, users []string) (map[string]State, error) {
	out := make(map[string]State, len(users))
	if len(users) == 0 {
		return out, nil
	}
	beats, err := r.Heartbeats(ctx)
	if err != nil {
		return nil, err
	}
	refs := make([]*firestore.DocumentRef, len(users))
	for i, u := range users {
		refs[i] = r.fs.Collection(presence.Collection).Doc(u)
	}
	snaps, err := r.fs.GetAll(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("read presence of %d users: %w", len(users), err)
	}
	now := r.now()
	for i, s := range snaps {
		st := State{}
		if s.Exists() {
			st = r.state(s.Data(), beats, now)
		}
		out[users[i]] = st
	}
	return out, nil
}

func (r *Reader) state(data map[string]any, beats map[string]time.Time, now time.Time) State {
	var st State
	if t, ok := data[presence.FieldLastSeen].(time.Time); ok {
		st.LastSeen = t
	}
	pods, _ := data["pods"].(map[string]any)
	for p := range pods {
		hb, ok := beats[p]
		if !ok {
			continue // a pod with no heartbeat record is gone
		}
		if now.Sub(hb) < r.opts.StaleAfter {
			return State{Online: true, LastSeen: now}
		}
		// Held by a pod that stopped beating: seen until its last beat.
		if hb.After(st.LastSeen) {
			st.LastSeen = hb
		}
	}
	return st
}
