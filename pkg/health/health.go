// Package health serves /healthz (the process is alive) and /readyz (its
// dependencies answer), the same way in every service.
package health

import (
	"context"
	"encoding/json"
	"net/http"

	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Check reports whether one dependency is usable.
type Check func(ctx context.Context) error

// Live answers 200 while the process serves HTTP.
func Live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Ready runs every check concurrently, each within timeout, and answers 200
// when all pass, 503 otherwise, with each check's result in the body.
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
