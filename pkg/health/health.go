// Package health serves /healthz (the process is alive) and /readyz (this
// pod can take work), the same way in every service, and watches the
// service's dependencies in the background (Probe).
//
// Readiness is the pod's own state only — started, its own resources in
// place (an edge's subscription), not draining — never a call to Pub/Sub or
// Firestore: a dependency blip would make every pod unready at once and
// leave the load balancer nowhere to send traffic, while no pod could do
// better than another. Dependencies are watched by the Probe, which exports
// courier_dependency_up for alerts (docs/deploy.md).
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Check reports whether one thing is usable: a readiness check (the pod's
// own state; cheap, no I/O) or a dependency check (a call, for the Probe).
type Check func(ctx context.Context) error

// Live answers 200 while the process serves HTTP.
func Live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Ready runs every check concurrently, each within timeout, and answers 200
// when all pass, 503 otherwise, with each check's result in the body. Give
// it the pod's own state, not dependencies (see the package comment).
func Ready(checks map[string]Check, timeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		results := make(map[string]string, len(checks))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for name, check := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := "ok"
				if err := check(ctx); err != nil {
					res = err.Error()
				}
				mu.Lock()
				results[name] = res
				mu.Unlock()
			}()
		}
		wg.Wait()
		code, st := http.StatusOK, "ok"
		for _, res := range results {
			if res != "ok" {
				code, st = http.StatusServiceUnavailable, "unavailable"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": st, "checks": results})
	}
}

// State is a readiness check on flags the service sets as it starts and
// stops: ready once Started, no longer once Draining.
type State struct {
	started, draining atomic.Bool
}

// Started marks the pod able to take work.
func (s *State) Started() { s.started.Store(true) }

// Draining marks the pod as stopping: readiness fails from now on, so the
// load balancer stops sending new work while in-flight work finishes.
func (s *State) Draining() { s.draining.Store(true) }

// Check is the readiness check of s.
func (s *State) Check(context.Context) error {
	switch {
	case s.draining.Load():
		return errors.New("draining")
	case !s.started.Load():
		return errors.New("starting")
	}
	return nil
}

// PubSubTopic checks that the topic exists and the service answers.
func PubSubTopic(client *pubsub.Client, topicPath string) Check {
	return func(ctx context.Context) error {
		_, err := client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: topicPath})
		return err
	}
}

// Firestore checks that Firestore answers a read (a missing document is an
// answer).
func Firestore(fs *firestore.Client) Check {
	return func(ctx context.Context) error {
		_, err := fs.Collection("health").Doc("probe").Get(ctx)
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return err
	}
}
