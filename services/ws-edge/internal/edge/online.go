package edge

import (
	"context"
	"encoding/json"
	"time"

	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/periodic"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/session"
	"github.com/courierhq/courier/services/ws-edge/internal/watch"
)

// The edge's part of presence (Config.Presence):
//
//   - a user's presence changes when this pod's record of them is written
//     or removed (presence.Recorder, offline debounced by OfflineDelay):
//     changed reads the user's state and publishes it as an ephemeral
//     event of kind "presence" to every pod;
//   - a killed pod removes nothing: every pod sweeps, every sweepInterval,
//     the records of pods whose heartbeat is stale (pkg/online) and
//     publishes the state of their users, so they go offline within
//     StaleAfter + sweepInterval of the dead pod's last heartbeat;
//   - each pod writes the events to its sessions that watch the user
//     (package watch: coalesced, deduplicated);
//   - a watch frame is checked against who may watch whom (users who share
//     a conversation: pkg/peers), answered at once with the current state
//     of every user asked for (those not allowed read offline, never seen),
//     and registered.

// sweepInterval is how often a pod sweeps dead pods' records.
const sweepInterval = 5 * time.Second

// Peers says whom a user shares a conversation with (peers.Directory).
type Peers interface {
	Shares(ctx context.Context, user string, others []string) (map[string]bool, error)
}

// podSweeper removes a dead pod's records (presence.Table).
type podSweeper interface {
	LeavePod(ctx context.Context, pod string, before time.Time) ([]string, error)
}

type onlineService struct {
	e       *Edge
	peers   Peers
	reader  *online.Reader
	sweeper podSweeper // nil when the presence writer cannot sweep
	reg     *watch.Registry
}

func newOnline(e *Edge, peers Peers, reader *online.Reader, w presence.Writer) *onlineService {
	o := &onlineService{e: e, peers: peers, reader: reader,
		reg: watch.New(func(result string, n int) { e.m.Ephemeral.WithLabelValues("presence", result).Add(float64(n)) })}
	o.sweeper, _ = w.(podSweeper)
	return o
}

// Run flushes the watchers' frames and sweeps dead pods until ctx ends.
func (o *onlineService) Run(ctx context.Context) error {
	go periodic.Run(ctx, sweepInterval, o.sweep)
	return o.reg.Run(ctx)
}

// changed publishes user's state after this pod's record of them changed
// (called on the Recorder's writing goroutine: the read runs apart).
func (o *onlineService) changed(user string) {
	o.e.m.PresenceOps.WithLabelValues("write").Inc()
	go o.publish(user)
}

func (o *onlineService) publish(user string) {
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	o.e.m.PresenceOps.WithLabelValues("read").Inc()
	states, err := o.reader.States(ctx, []string{user})
	if err != nil {
		o.e.log.Warn("presence: read after a change failed; watchers learn of it at the next change", "user", user, "err", err)
		return
	}
	ev := watch.EventOf(user, states[user])
	o.e.ephemeral.Publish(ctx, []string{user}, wire.KindPresence, watch.Frame(ev))
}

// sweep removes the records of pods whose heartbeat is stale and publishes
// their users' states. Several pods may do it at once: the writes are
// idempotent, the duplicate events coalesce at the watchers.
func (o *onlineService) sweep(ctx context.Context) {
	if o.sweeper == nil {
		return
	}
	stale, err := o.reader.Stale(ctx)
	if err != nil {
		o.e.log.Warn("presence: reading pod heartbeats failed", "err", err)
		return
	}
	for pod, cutoff := range stale {
		if pod == o.e.cfg.Pod {
			continue // this pod is alive; its own beat is late, not stale
		}
		// Only the dead pod's records: a pod restarted under the same name
		// keeps the ones it writes now (online.Reader.Stale).
		users, err := o.sweeper.LeavePod(ctx, pod, cutoff)
		o.e.m.PresenceOps.WithLabelValues("sweep").Add(float64(len(users)))
		if err != nil {
			o.e.log.Warn("presence: sweeping a dead pod's records failed", "pod", pod, "err", err)
		}
		if len(users) > 0 {
			o.e.log.Info("presence: swept the records of a pod with a stale heartbeat", "pod", pod, "users", len(users))
		}
		for _, u := range users {
			o.publish(u)
		}
	}
}

// Watch replaces s's watch set (session.Watch); the reads run apart from
// the session's reader.
func (o *onlineService) Watch(s *session.Session, users []string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
		defer cancel()
		allowed, err := o.peers.Shares(ctx, s.UserID(), users)
		if err == nil {
			var ok []string
			for _, u := range users {
				if allowed[u] {
					ok = append(ok, u)
				}
			}
			var states map[string]online.State
			o.e.m.PresenceOps.WithLabelValues("read").Inc()
			if states, err = o.reader.States(ctx, ok); err == nil {
				initial := make([]watch.Event, 0, len(users))
				for _, u := range users {
					// Not allowed: offline and never seen, as for a user
					// who does not exist (nothing is revealed).
					initial = append(initial, watch.EventOf(u, states[u]))
				}
				o.reg.Set(s, ok, initial)
				return
			}
		}
		o.e.log.Warn("presence: watch failed", "session_id", s.ID(), "user", s.UserID(), "err", err)
		s.SendEphemeral(frame.Error("unavailable", "could not apply the watch; send it again"))
	}()
}

// forget drops s's watch set when it ends.
func (o *onlineService) forget(s *session.Session) { o.reg.Forget(s) }

// Presence hands a presence event to the watchers here (fanout.Sessions).
func (es ephemeralSessions) Presence(user string, b []byte) {
	if es.o == nil {
		return
	}
	var ev watch.Event
	if err := json.Unmarshal(b, &ev); err != nil || ev.User != user {
		es.o.e.m.Ephemeral.WithLabelValues("presence", "bad_data").Inc()
		return
	}
	es.o.reg.Update(ev)
}

// Watched reports whether a session here watches user.
func (es ephemeralSessions) Watched(user string) bool {
	return es.o != nil && es.o.reg.Watched(user)
}
