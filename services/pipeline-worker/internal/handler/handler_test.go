package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
	"github.com/courierhq/courier/services/pipeline-worker/internal/fanout"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// fakeBatches commits every item to the in-memory inbox store, one call
// one batch, unless result says otherwise.
type fakeBatches struct {
	store   inboxtest.Committer
	commits [][]string
	result  func(id string, r *batch.Result)
}

func (f *fakeBatches) Commit(ctx context.Context, items []batch.Item) []batch.Result {
	if f.store == nil {
		f.store = inboxtest.NewMemory().NewCommitter()
	}
	ids := make([]string, len(items))
	envs := make([]*courierv1.Envelope, len(items))
	for i, it := range items {
		ids[i], envs[i] = it.Env.MessageId, it.Env
	}
	res := make([]batch.Result, len(items))
	for i, r := range f.store.Commit(ctx, envs) {
		res[i] = batch.Result{Result: r}
		if r.Err == nil {
			res[i].Batch = &batch.Batch{Size: len(items)}
		}
		if f.result != nil {
			f.result(ids[i], &res[i])
		}
	}
	f.commits = append(f.commits, ids)
	return res
}

type published struct {
	out  []pubsubx.Outgoing
	fail func(id string) error
}

func (p *published) publish(out []pubsubx.Outgoing) []error {
	errs := make([]error, len(out))
	for i, o := range out {
		if p.fail != nil {
			if errs[i] = p.fail(o.CourierID); errs[i] != nil {
				continue
			}
		}
		p.out = append(p.out, o)
	}
	return errs
}

func msg(id string, to ...string) *Message {
	return &Message{ctx: context.Background(), env: &courierv1.Envelope{
		MessageId: id, Sender: "alice", Recipients: to, Payload: []byte(`{"n":1}`), ContentType: "application/json", SentAt: timestamppb.Now(),
	}}
}

func newHandler(f *fakeBatches, p *published) *Handler {
	fan, err := fanout.New(p.publish, nil, time.Second, metrics.New(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		panic(err)
	}
	return NewHandler(f, fan)
}

func TestStoredMessagesArePublishedInOrder(t *testing.T) {
	f, p := &fakeBatches{}, &published{}
	h := newHandler(f, p)
	msgs := []*Message{msg("m1", "bob", "carol"), msg("m2", "bob")}
	for _, err := range h.Attempt(context.Background(), msgs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(f.commits) != 1 || len(p.out) != 2 || p.out[0].CourierID != "m1" || p.out[1].CourierID != "m2" {
		t.Fatalf("commits %v, published %d", f.commits, len(p.out))
	}
	d := p.out[0].Msg
	want := map[string]string{
		wire.AttrMessageID: "m1", wire.AttrSender: "alice", wire.AttrRecipients: "bob,carol,alice", // the sender's copy goes live too
		wire.AttrSchema: "courier.v1.Delivery", wire.AttrContentType: "application/protobuf",
	}
	for k, v := range want {
		if d.Attributes[k] != v {
			t.Errorf("delivery attribute %s = %q, want %q", k, d.Attributes[k], v)
		}
	}
	if d.OrderingKey != "" {
		t.Errorf("ordering key %q: deliveries carry none (pkg/wire)", d.OrderingKey)
	}
	var del courierv1.Delivery
	if err := proto.Unmarshal(d.Data, &del); err != nil || del.Message.Id != "m1" || len(del.Recipients) != 3 ||
		del.Recipients[1].Cursor != inbox.EncodeCursor(1) || !del.Recipients[2].Outgoing {
		t.Fatalf("delivery body %v %v", &del, err)
	}
	if !msgs[0].Done() || msgs[0].result() != "stored" {
		t.Fatalf("done %v result %s", msgs[0].Done(), msgs[0].result())
	}
}

// A message stored before (a redelivery) has its delivery published again.
func TestStoredBeforeIsPublishedAgain(t *testing.T) {
	store := inboxtest.NewMemory()
	m := msg("m1", "bob")
	inboxtest.MustCommit(t, store, m.env)
	f, p := &fakeBatches{store: store.NewCommitter()}, &published{}
	h := newHandler(f, p)
	if errs := h.Attempt(context.Background(), []*Message{m}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(p.out) != 1 || m.result() != "duplicate" {
		t.Fatalf("published %d, result %s", len(p.out), m.result())
	}
}

// A failed publish is retried without committing again; a failed commit
// leaves the message for the next attempt.
func TestTheNextAttemptDoesOnlyWhatIsLeft(t *testing.T) {
	down := errors.New("pubsub down")
	f := &fakeBatches{result: func(id string, r *batch.Result) {
		if id == "m3" {
			r.Err = errors.New("firestore down")
		}
	}}
	p := &published{fail: func(id string) error {
		if id == "m1" {
			return down
		}
		return nil
	}}
	h := newHandler(f, p)
	msgs := []*Message{msg("m1", "bob"), msg("m2", "bob"), msg("m3", "bob")}
	errs := h.Attempt(context.Background(), msgs)
	if !errors.Is(errs[0], down) || errs[1] != nil || errs[2] == nil {
		t.Fatalf("first attempt %v", errs)
	}
	f.result, p.fail = nil, nil
	if errs := h.Attempt(context.Background(), msgs); errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("second attempt %v", errs)
	}
	if fmt.Sprint(f.commits) != "[[m1 m2 m3] [m3]]" {
		t.Fatalf("commits %v", f.commits)
	}
	var ids []string
	for _, o := range p.out {
		ids = append(ids, o.CourierID)
	}
	if fmt.Sprint(ids) != "[m2 m1 m3]" {
		t.Fatalf("published %v", ids)
	}
}
