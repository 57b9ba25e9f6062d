// Package sweep deletes the Pub/Sub subscriptions of ws-edge pods that are
// gone. Each edge pod deletes its own subscription when it stops
// gracefully; a pod killed with SIGKILL (OOM, node loss) leaves it behind,
// and Pub/Sub keeps filling it with every delivery until the expiration
// policy fires a day later (never, on the emulator). A pod is alive while
// its heartbeat in Firestore (pkg/edges) is fresh, or when the operator
// names it in Keep (e.g. from `kubectl get pods`).
package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"

	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/topology"
)

// Heartbeats are the edge pods' liveness records.
type Heartbeats interface {
	Pods(ctx context.Context) (map[string]edges.Pod, error)
	Remove(ctx context.Context, pod string) error
}

// Options tune one sweep.
type Options struct {
	// Stale is the heartbeat age after which a pod is gone; keep it several
	// heartbeat intervals long.
	Stale time.Duration
	// Keep names pods known to be alive; their subscriptions stay whatever
	// their heartbeat says.
	Keep []string
	// DryRun reports and deletes nothing.
	DryRun bool
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// Actions in a Decision.
const (
	ActionKeep        = "keep"
	ActionDelete      = "delete"
	ActionWouldDelete = "would-delete"
	// ActionForget removes a stale heartbeat record that has no
	// subscription left.
	ActionForget = "forget"
)

// Decision is what the sweep did with one subscription (or record).
type Decision struct {
	Action       string
	Subscription string // full path; empty for ActionForget
	Pod          string
	Reason       string
}

func (d Decision) String() string {
	name := d.Subscription
	if name == "" {
		name = "(heartbeat record)"
	}
	return fmt.Sprintf("%-12s %s  pod %s: %s", d.Action, name, d.Pod, d.Reason)
}

// Run lists the edge subscriptions of the deliveries topic, then reads the
// heartbeats (in that order: an edge beats before it creates its
// subscription, so every subscription listed has its heartbeat visible),
// and deletes the subscriptions whose pod is gone.
func Run(ctx context.Context, client *pubsub.Client, hb Heartbeats, cfg topology.Config, o Options) ([]Decision, error) {
	if o.Stale <= 0 {
		return nil, errors.New("stale must be positive")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	subs, err := edgeSubscriptions(ctx, client, cfg)
	if err != nil {
		return nil, err
	}
	pods, err := hb.Pods(ctx)
	if err != nil {
		return nil, err
	}
	now := o.Now()
	var out []Decision
	var errs []error
	seen := map[string]bool{}
	for _, sub := range subs {
		pod := strings.TrimPrefix(sub[strings.LastIndex(sub, "/")+1:], cfg.EdgeSubscriptionPrefix)
		seen[pod] = true
		d := Decision{Subscription: sub, Pod: pod}
		p, beating := pods[pod]
		age := now.Sub(p.Heartbeat).Round(time.Second)
		switch {
		case slices.Contains(o.Keep, pod):
			d.Action, d.Reason = ActionKeep, "listed in --keep"
		case beating && age <= o.Stale:
			d.Action, d.Reason = ActionKeep, fmt.Sprintf("heartbeat %s ago", age)
		default:
			d.Reason = "no heartbeat recorded"
			if beating {
				d.Reason = fmt.Sprintf("heartbeat %s ago, older than %s", age, o.Stale)
			}
			d.Action = ActionWouldDelete
			if !o.DryRun {
				d.Action = ActionDelete
				if err := topology.DeleteSubscription(ctx, client, sub); err != nil {
					errs = append(errs, err)
					d.Reason += " (delete failed)"
				} else if err := hb.Remove(ctx, pod); err != nil {
					errs = append(errs, err)
				}
			}
		}
		out = append(out, d)
	}
	// Records of pods gone without a subscription: forget the stale ones.
	for name, p := range pods {
		if seen[name] || slices.Contains(o.Keep, name) {
			continue
		}
		if age := now.Sub(p.Heartbeat).Round(time.Second); age > o.Stale {
			d := Decision{Action: ActionForget, Pod: name, Reason: fmt.Sprintf("heartbeat %s ago and no subscription", age)}
			if o.DryRun {
				d.Reason += " (dry run)"
			} else if err := hb.Remove(ctx, name); err != nil {
				errs = append(errs, err)
			}
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Decision) int { return strings.Compare(a.Pod, b.Pod) })
	return out, errors.Join(errs...)
}

// edgeSubscriptions lists the subscriptions of the deliveries topic named
// with the edge prefix.
func edgeSubscriptions(ctx context.Context, client *pubsub.Client, cfg topology.Config) ([]string, error) {
	topic := cfg.TopicPath(cfg.DeliveriesTopic)
	it := client.TopicAdminClient.ListTopicSubscriptions(ctx, &pubsubpb.ListTopicSubscriptionsRequest{Topic: topic})
	prefix := cfg.SubscriptionPath(cfg.EdgeSubscriptionPrefix)
	var out []string
	for {
		name, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list subscriptions of %s: %w", topic, err)
		}
		if strings.HasPrefix(name, prefix) && len(name) > len(prefix) {
			out = append(out, name)
		}
	}
}
