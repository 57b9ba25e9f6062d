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
//
// With a leave delay (WithLeaveDelay), a Leave waits that long before it
// writes, and a first session arriving meanwhile cancels it: the record
// never went away, so nothing is written at all. That debounces going
// offline (a reconnect is not a flap) and bounds a flapping user's writes
// to about two per delay per pod, whatever the rate of reconnects. A stale
// record during the delay costs only deliveries routed here in vain.
type Recorder struct {
	w          Writer
	pod        string
	timeout    time.Duration
	log        *slog.Logger
	leaveDelay time.Duration
	onChange   func(user string)

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
	// A delayed Leave: its timer, the Join it would undo, and whether it
	// was cancelled (by a new first session) or started; under r.mu.
	timer            *time.Timer
	prev             *write
	cancelled, fired bool
}

// WithLeaveDelay makes every Leave wait d, cancelled by a first session
// arriving meanwhile. Call it before the first event.
func (r *Recorder) WithLeaveDelay(d time.Duration) *Recorder {
	r.leaveDelay = d
	return r
}

// OnChange has f called, on the writing goroutine, after each Join or
// Leave that was written (not for a Leave cancelled by a reconnect): the
// user's presence may have changed. Call it before the first event.
func (r *Recorder) OnChange(f func(user string)) *Recorder {
	r.onChange = f
	return r
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
func (r *Recorder) FirstSession(user string) {
	r.mu.Lock()
	if l := r.users[user]; l != nil && l.timer != nil && !l.fired && !l.cancelled && l.prev != nil {
		// A delayed Leave that has not started: cancel it. Its Join stands
		// (if it failed, a new one is written).
		l.timer.Stop()
		l.cancelled = true
		close(l.done)
		r.users[user] = l.prev
		select {
		case <-l.prev.done:
			if l.prev.err != nil {
				r.mu.Unlock()
				r.start(user, true)
				return
			}
		default:
		}
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.start(user, true)
}

// LastSession starts removing user's record. A failed removal is logged
// only: a stale record costs deliveries routed here in vain, never a lost
// one.
func (r *Recorder) LastSession(user string) {
	if r.leaveDelay <= 0 {
		r.start(user, false)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &write{done: make(chan struct{}), prev: r.users[user]}
	r.users[user] = w
	w.timer = time.AfterFunc(r.leaveDelay, func() { r.fire(user, w) })
}

// fire starts a delayed Leave unless a first session cancelled it.
func (r *Recorder) fire(user string, w *write) {
	r.mu.Lock()
	if w.cancelled || w.fired {
		r.mu.Unlock()
		return
	}
	w.fired = true
	r.mu.Unlock()
	go r.run(user, w, w.prev)
}

// flushLeaves starts every delayed Leave now (the pod's drain).
func (r *Recorder) flushLeaves() {
	r.mu.Lock()
	var due []*write
	var users []string
	for u, w := range r.users {
		if w.timer != nil && !w.fired && !w.cancelled {
			w.timer.Stop()
			due, users = append(due, w), append(users, u)
		}
	}
	r.mu.Unlock()
	for i, w := range due {
		r.fire(users[i], w)
	}
}

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
	// A finished leave forgets the user in the same critical section that
	// marks it done: whoever sees it done (Wait) sees the user forgotten,
	// and a first session that starts after it finds no write to wait for
	// (the leave has completed) while one that started before waits on it.
	r.mu.Lock()
	if !w.join && r.users[user] == w {
		delete(r.users, user)
	}
	close(w.done)
	r.mu.Unlock()
	if w.err == nil && r.onChange != nil {
		r.onChange(user)
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
	r.flushLeaves()
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
