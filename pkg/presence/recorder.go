package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Writer is where a Recorder writes (Table).
type Writer interface {
	Join(ctx context.Context, user, pod string) error
	Leave(ctx context.Context, user, pod string) error
}

// Recorder keeps one pod's records from its session registry's events: the
// user's first session on the pod starts a Join, the user's last session
// leaving starts a Leave. It counts nothing itself (the registry knows how
// many sessions a user has).
//
// One user's writes run in the order of the events: a Leave still in
// flight when a new first session arrives is waited for, or it could land
// after the new Join and leave the user connected here with no record, and
// the worker would route the user's deliveries elsewhere.
type Recorder struct {
	w       Writer
	pod     string
	timeout time.Duration
	log     *slog.Logger

	mu sync.Mutex
	// users holds each user's latest write: the Join of the user's current
	// sessions, or a Leave still in flight (forgotten once done), so the
	// map is the size of the pod's users.
	users map[string]*write
}

// write is one Join or Leave; err is set before done is closed.
type write struct {
	join bool
	done chan struct{}
	err  error
}

// ErrNoSession is Joined's answer for a user with no session registered.
var ErrNoSession = errors.New("presence: the user has no session on this pod")

// NewRecorder returns pod's Recorder writing to w; each write gets at most
// timeout.
func NewRecorder(w Writer, pod string, timeout time.Duration, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{w: w, pod: pod, timeout: timeout, log: log, users: map[string]*write{}}
}

// FirstSession starts recording that this pod holds user. It does not block
// (the registry calls it under its lock); Joined waits for the write.
func (r *Recorder) FirstSession(user string) { r.start(user, true) }

// LastSession starts removing user's record. A failed removal is logged
// only: a stale record costs deliveries routed here in vain, never a lost
// one.
func (r *Recorder) LastSession(user string) { r.start(user, false) }

func (r *Recorder) start(user string, join bool) {
	r.mu.Lock()
	prev := r.users[user]
	w := &write{join: join, done: make(chan struct{})}
	r.users[user] = w
	r.mu.Unlock()
	go r.run(user, w, prev)
}

func (r *Recorder) run(user string, w, prev *write) {
	if prev != nil {
		<-prev.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	if w.join {
		w.err = r.w.Join(ctx, user, r.pod)
	} else if w.err = r.w.Leave(ctx, user, r.pod); w.err != nil {
		r.log.Warn("removing presence failed (deliveries may still be routed here, which costs but loses nothing)", "user", user, "err", w.err)
	}
	cancel()
	close(w.done)
	if !w.join {
		r.mu.Lock()
		if r.users[user] == w {
			delete(r.users, user)
		}
		r.mu.Unlock()
	}
}

// Joined returns once the record of user's current sessions here is
// committed, or with the Join's error: a session must not read its inbox
// before (the package's argument), nor be served if the Join failed. Call it
// while a session of user is registered, so that the user's latest event is
// the first session's.
func (r *Recorder) Joined(ctx context.Context, user string) error {
	r.mu.Lock()
	w := r.users[user]
	r.mu.Unlock()
	if w == nil || !w.join {
		return ErrNoSession
	}
	select {
	case <-w.done:
		if w.err != nil {
			return fmt.Errorf("record presence: %w", w.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the presence record of %s: %w", user, ctx.Err())
	}
}

// Wait returns once every write started so far has finished, or when ctx
// ends (the pod's drain, before its records are swept).
func (r *Recorder) Wait(ctx context.Context) error {
	for {
		var pending []chan struct{}
		r.mu.Lock()
		for _, w := range r.users {
			select {
			case <-w.done:
			default:
				pending = append(pending, w.done)
			}
		}
		r.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		// A user's latest write ends after the ones before it.
		for _, done := range pending {
			select {
			case <-done:
			case <-ctx.Done():
				return fmt.Errorf("wait for presence writes: %w", ctx.Err())
			}
		}
	}
}
