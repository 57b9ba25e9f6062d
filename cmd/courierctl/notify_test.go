package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/pkg/testenv"
)

// syncBuffer is a bytes.Buffer safe to read while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNotifyTail runs `courierctl notify tail --count 1` on the emulator
// against a provisioned topology: it prints the first event published to
// courier-notify once its own subscription exists, and removes that
// subscription when it ends.
func TestNotifyTail(t *testing.T) {
	project := testenv.Project(t)
	client, topo := testenv.Topology(t, project, nil)
	t.Setenv("GOOGLE_CLOUD_PROJECT", project)
	ctx := testenv.Context(t, time.Minute)
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- notifyCommand(ctx, []string{"tail", "--count", "1", "--for", "45s"}, &out) }()

	pub := client.Publisher(topo.NotifyTopic)
	defer pub.Stop()
	event := `{"user":"bob","message_id":"m1","conversation_id":"d.x","from":"alice","sent_at":"2026-01-01T00:00:00Z"}`
	// The tail sees only what is published after its subscription exists:
	// publish until it prints.
	testenv.WaitFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		if strings.Contains(out.String(), `"message_id":"m1"`) {
			return nil
		}
		if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(event)}).Get(ctx); err != nil {
			return err
		}
		return context.DeadlineExceeded
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != event {
		t.Fatalf("printed %q, want the event once", got)
	}
	subs := client.SubscriptionAdminClient.ListSubscriptions(ctx, &pubsubpb.ListSubscriptionsRequest{Project: "projects/" + project})
	for {
		s, err := subs.Next()
		if err != nil {
			break
		}
		if strings.Contains(s.GetName(), "courier-notify-tail-") {
			t.Errorf("tail left its subscription %s behind", s.GetName())
		}
	}
}
