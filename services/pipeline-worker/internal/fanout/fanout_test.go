package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// group is a committed batch as the fan-out sees it.
type group struct{ users []string }

func (g *group) Lead() context.Context { return context.Background() }
func (g *group) Recipients() []string  { return g.users }

// recorder publishes into a list and records presence reads.
type recorder struct {
	mu    sync.Mutex
	out   []pubsubx.Outgoing
	reads []string
	fail  bool
}

func (r *recorder) publish(out []pubsubx.Outgoing) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = append(r.out, out...)
	return make([]error, len(out))
}

func (r *recorder) PodsOf(_ context.Context, users []string) (map[string][]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = append(r.reads, strings.Join(users, ","))
	if r.fail {
		return nil, errors.New("firestore unavailable")
	}
	return map[string][]string{"bob": {"edge-a"}, "carol": {"edge-a", "edge-b"}}, nil
}

func item(id string, g Group, to ...string) Item {
	return Item{Out: pubsubx.Outgoing{Ctx: context.Background(), CourierID: id, Msg: &pubsub.Message{Attributes: map[string]string{"courier_message_id": id}}},
		Recipients: to, Group: g}
}

func newFanout(p Presence, r *recorder) (*Fanout, *metrics.Metrics) {
	m := metrics.New(prometheus.NewRegistry())
	f, err := New(r.publish, p, time.Minute, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		panic(err)
	}
	return f, m
}

func (r *recorder) attrs(id string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.out {
		if o.CourierID == id {
			return o.Msg.Attributes
		}
	}
	return nil
}

// With targeted routing, presence is read once per committed batch, for
// its distinct recipients, however many of its messages fan out and from
// how many runs at once; each delivery names its own recipients' pods
// (none: routed nowhere); unreadable presence sends it unrouted, to every
// pod.
func TestPresenceIsReadOncePerBatch(t *testing.T) {
	rec := &recorder{}
	f, m := newFanout(rec, rec)
	b1 := &group{users: []string{"bob", "dave", "carol"}}
	var wg sync.WaitGroup
	for _, run := range [][]Item{
		{item("m1", b1, "bob", "dave"), item("m2", b1, "carol", "bob")},
		{item("m3", b1, "dave")},
	} {
		wg.Go(func() {
			for _, err := range f.Publish(context.Background(), run) {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if fmt.Sprint(rec.reads) != "[bob,dave,carol]" {
		t.Fatalf("presence reads %q, want one for the batch", rec.reads)
	}
	if a := rec.attrs("m1"); a[presence.AttrRouted] != "1" || !presence.RoutedTo(a, "edge-a") || presence.RoutedTo(a, "edge-b") {
		t.Fatalf("m1 %v", a)
	}
	if a := rec.attrs("m2"); !presence.RoutedTo(a, "edge-a") || !presence.RoutedTo(a, "edge-b") {
		t.Fatalf("m2 %v", a)
	}
	if a := rec.attrs("m3"); a[presence.AttrRouted] != "1" || presence.RoutedTo(a, "edge-a") || presence.RoutedTo(a, "edge-b") {
		t.Fatalf("m3 (nobody connected) %v", a)
	}

	rec.fail = true
	b2 := &group{users: []string{"bob"}}
	if errs := f.Publish(context.Background(), []Item{item("m4", b2, "bob")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if _, ok := rec.attrs("m4")[presence.AttrRouted]; ok {
		t.Fatalf("delivery with unknown presence is routed: %v", rec.attrs("m4"))
	}
	for l, want := range map[string]float64{"routed": 2, "nowhere": 1, "unrouted": 1} {
		if got := testutil.ToFloat64(m.Routing.WithLabelValues(l)); got != want {
			t.Errorf("routing{%s} = %v, want %v", l, got, want)
		}
	}
	if n := testutil.ToFloat64(m.FirestoreRoundTrips.WithLabelValues("read_presence")); n != 2 {
		t.Fatalf("presence reads counted %v, want 2", n)
	}
}

// Without targeted routing nothing reads presence and deliveries carry no
// route; they are published in the order given.
func TestWithoutRoutingDeliveriesGoOutUnmarked(t *testing.T) {
	rec := &recorder{}
	f, _ := newFanout(nil, rec)
	g := &group{users: []string{"bob"}}
	f.Publish(context.Background(), []Item{item("m1", g, "bob"), item("m2", g, "bob")})
	if len(rec.reads) != 0 || len(rec.out) != 2 || rec.out[0].CourierID != "m1" || rec.out[1].CourierID != "m2" {
		t.Fatalf("reads %v, published %d", rec.reads, len(rec.out))
	}
	if !slices.Equal(keys(rec.out[0].Msg.Attributes), []string{"courier_message_id"}) {
		t.Fatalf("attributes %v", rec.out[0].Msg.Attributes)
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// A presence read that panics leaves its batch's other messages unrouted
// (to every pod) rather than waiting for it; the panic itself goes up to
// the handler's Recover.
func TestPanickingPresenceReadDoesNotHoldTheBatch(t *testing.T) {
	rec := &recorder{}
	f, _ := newFanout(panicking{}, rec)
	g := &group{users: []string{"bob"}}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		f.Publish(context.Background(), []Item{item("m1", g, "bob")})
	}()
	if errs := f.Publish(context.Background(), []Item{item("m2", g, "bob")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if _, ok := rec.attrs("m2")[presence.AttrRouted]; ok {
		t.Fatalf("m2 routed after a panicking read: %v", rec.attrs("m2"))
	}
}

type panicking struct{}

func (panicking) PodsOf(context.Context, []string) (map[string][]string, error) { panic("boom") }
