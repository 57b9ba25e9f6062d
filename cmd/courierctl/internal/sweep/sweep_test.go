package sweep_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/cmd/courierctl/internal/sweep"
	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
)

// Sweep deletes the subscriptions of pods without a fresh heartbeat (and
// their records), keeps live pods and pods named in Keep, and leaves every
// other subscription alone; a dry run changes nothing.
func TestSweepDeletesOrphansAndKeepsLivePods(t *testing.T) {
	project := testenv.Project(t)
	ps, cfg := testenv.Topology(t, project, nil)
	fs := testenv.Firestore(t, project)
	hb := edges.New(fs)
	ctx := testenv.Context(t, time.Minute)
	for _, pod := range []string{"live", "dead", "ghost", "kept"} {
		if _, err := topology.EnsureSubscription(ctx, ps, cfg.EdgeSubscription(pod, "")); err != nil {
			t.Fatal(err)
		}
	}
	// Prefixed like an edge subscription but on another topic: not ours.
	other := &pubsubpb.Subscription{Name: cfg.SubscriptionPath(cfg.EdgeSubscriptionPrefix + "elsewhere"), Topic: cfg.TopicPath(cfg.IngressTopic)}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := hb.Beat(ctx, "live", cfg.SubscriptionPath(cfg.EdgeSubscriptionID("live")), time.Now()); err != nil {
		t.Fatal(err)
	}
	// Old heartbeats, written as a pod that stopped beating an hour ago left them.
	for _, pod := range []string{"dead", "kept", "zombie"} {
		if _, err := fs.Collection(edges.Collection).Doc(pod).Set(ctx, map[string]any{
			"subscription": cfg.SubscriptionPath(cfg.EdgeSubscriptionID(pod)),
			"heartbeat":    time.Now().Add(-time.Hour), "started_at": time.Now().Add(-2 * time.Hour),
		}); err != nil {
			t.Fatal(err)
		}
	}
	opts := sweep.Options{Stale: 5 * time.Minute, Keep: []string{"kept"}, DryRun: true}

	dry, err := sweep.Run(ctx, ps, hb, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"dead": "would-delete", "ghost": "would-delete", "kept": "keep", "live": "keep", "zombie": "forget"}
	check(t, "dry run", dry, want)
	for _, pod := range []string{"live", "dead", "ghost", "kept"} {
		if !exists(t, ps, cfg.SubscriptionPath(cfg.EdgeSubscriptionID(pod))) {
			t.Fatalf("dry run deleted %s", pod)
		}
	}

	opts.DryRun = false
	got, err := sweep.Run(ctx, ps, hb, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	want["dead"], want["ghost"] = "delete", "delete"
	check(t, "sweep", got, want)
	for pod, wantExists := range map[string]bool{"live": true, "kept": true, "dead": false, "ghost": false, "elsewhere": true} {
		if got := exists(t, ps, cfg.SubscriptionPath(cfg.EdgeSubscriptionPrefix+pod)); got != wantExists {
			t.Errorf("subscription of %s exists = %v, want %v", pod, got, wantExists)
		}
	}
	pods, err := hb.Pods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pods["dead"]; ok || len(pods) != 2 {
		t.Errorf("heartbeat records left: %v (want live and kept)", pods)
	}
	for _, name := range []string{cfg.SubscriptionPath(cfg.IngressSubscription), cfg.SubscriptionPath(cfg.DeadLetterSubscription)} {
		if !exists(t, ps, name) {
			t.Errorf("sweep deleted %s", name)
		}
	}

	// Once the live pod stops beating past Stale, it is swept too.
	later := sweep.Options{Stale: 5 * time.Minute, Now: func() time.Time { return time.Now().Add(10 * time.Minute) }}
	got, err = sweep.Run(ctx, ps, hb, cfg, later)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "later", got, map[string]string{"live": "delete", "kept": "delete"})
}

func check(t *testing.T, name string, got []sweep.Decision, want map[string]string) {
	t.Helper()
	actions := map[string]string{}
	for _, d := range got {
		actions[d.Pod] = d.Action
		t.Logf("%s: %s", name, d)
	}
	if len(actions) != len(want) {
		t.Errorf("%s: decisions %v, want %v", name, actions, want)
	}
	for pod, a := range want {
		if actions[pod] != a {
			t.Errorf("%s: %s → %q, want %q", name, pod, actions[pod], a)
		}
	}
}

func exists(t *testing.T, ps *pubsub.Client, name string) bool {
	t.Helper()
	_, err := ps.SubscriptionAdminClient.GetSubscription(context.Background(), &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if status.Code(err) == codes.NotFound {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
