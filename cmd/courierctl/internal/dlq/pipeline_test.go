package dlq_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/cmd/courierctl/internal/dlq"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// A message the real pipeline-worker dead-letters (its payload is over the
// worker's limit) is replayed once the limit is fixed, and goes through the
// whole pipeline: stored in Firestore, delivered on the fan-out topic, gone
// from the dead-letter subscription.
func TestReplayBringsAFixedMessageThroughTheWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the pipeline-worker binary")
	}
	p := newProject(t)
	fs := testenv.Firestore(t, p.cfg.Project)
	ctx := testenv.Context(t, 3*time.Minute)
	bin := buildWorker(t)

	deliveries := "test-deliveries"
	if _, err := p.ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: p.cfg.SubscriptionPath(deliveries), Topic: p.cfg.TopicPath(p.cfg.DeliveriesTopic),
	}); err != nil {
		t.Fatal(err)
	}

	// 1. A worker whose payload limit is too small dead-letters the message.
	strict := startWorker(t, bin, p.cfg.Project, "WORKER_MAX_PAYLOAD_BYTES=16")
	env := &courierv1.Envelope{
		MessageId: "m-replayed", Sender: "alice", Recipients: []string{"bob"},
		Payload: []byte(`{"text":"a payload over sixteen bytes"}`), ContentType: "application/json", SentAt: timestamppb.Now(),
	}
	data, _ := proto.Marshal(env)
	ingress := p.ps.Publisher(p.cfg.IngressTopic)
	ingress.EnableMessageOrdering = true
	defer ingress.Stop()
	if _, err := pubsubx.Publish(ctx, ingress, &pubsub.Message{Data: data, OrderingKey: "alice", Attributes: map[string]string{
		wire.AttrMessageID: env.MessageId, wire.AttrSender: "alice",
		wire.AttrSchema: "courier.v1.Envelope", wire.AttrContentType: "application/protobuf",
	}}, env.MessageId); err != nil {
		t.Fatal(err)
	}
	insp := p.inspector()
	var letter *dlq.DeadLetter
	testenv.Eventually(t, 60*time.Second, "the worker dead-letters the oversized message", func() bool {
		letter, _ = insp.Show(ctx, env.MessageId)
		return letter != nil
	})
	if letter.Reason != "too_large" || letter.Attempts != 1 || letter.Envelope == nil || letter.Attributes["traceparent"] == "" {
		t.Fatalf("dead letter %+v", letter)
	}
	strict.stop(t)

	// 2. The limit is fixed; the replay goes through the pipeline.
	startWorker(t, bin, p.cfg.Project)
	results, err := insp.Replay(ctx, []string{env.MessageId}, false)
	if err != nil || len(results) != 1 || results[0].Err != nil {
		t.Fatalf("replay: %+v %v", results, err)
	}
	store := inbox.New(fs)
	testenv.Eventually(t, 60*time.Second, "the replayed message stored", func() bool {
		_, err := store.Get(ctx, env.MessageId)
		return err == nil
	})
	entries, err := store.List(ctx, "bob", 0, 10)
	if err != nil || len(entries) != 1 || entries[0].Message.Id != env.MessageId {
		t.Fatalf("bob's inbox: %v %v", entries, err)
	}
	var delivered *pubsub.Message
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_ = p.ps.Subscriber(deliveries).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		if m.Attributes[wire.AttrMessageID] == env.MessageId {
			delivered = m
			cancel()
		}
	})
	cancel()
	if delivered == nil {
		t.Fatal("the replayed message was not delivered")
	}
	if letters, err := insp.List(ctx); err != nil || len(letters) != 0 {
		t.Fatalf("dead letters after the replay: %v %v", letters, err)
	}
}

func buildWorker(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs("../../../../services/pipeline-worker")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pipeline-worker")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pipeline-worker: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd  *exec.Cmd
	done chan error
	out  *testenv.LogBuffer
	once sync.Once
}

func startWorker(t *testing.T, bin, project string, extraEnv ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "GOOGLE_CLOUD_PROJECT="+project, "HTTP_ADDR=127.0.0.1:0", "ADMIN_ADDR=127.0.0.1:0", "SHUTDOWN_TIMEOUT=5s",
		"OTEL_TRACES_EXPORTER=none")
	cmd.Env = append(cmd.Env, extraEnv...)
	out := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), out: out}
	go func() { p.done <- cmd.Wait() }()
	out.ShowOnFailure(t, "pipeline-worker output")
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and expects a clean exit within the shutdown timeout.
func (p *proc) stop(t *testing.T) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				t.Errorf("pipeline-worker exited with %v:\n%s", err, p.out.String())
			}
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			t.Errorf("pipeline-worker did not stop within 15s of SIGTERM")
		}
	})
}
