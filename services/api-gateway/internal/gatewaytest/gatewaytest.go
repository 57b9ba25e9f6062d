// Package gatewaytest holds what the gateway's tests share (messages,
// httpapi and grpcapi): publishers made of a func or recording what they
// get, and the defaults of a test server's parts (Defaults). The inbox they
// read is pkg/inbox/inboxtest's Memory. Only tests import it.
package gatewaytest

import (
	"context"
	"sync"

	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
)

// Defaults fills in what a test server's parts leave out: a publisher that
// confirms every publish, an empty in-memory inbox, and a rate limit no
// functional test reaches (tests of the limit set their own).
func Defaults(pub messages.Publisher, store messages.Store, rate ratelimit.Options) (messages.Publisher, messages.Store, ratelimit.Options) {
	if pub == nil {
		pub = PublishFunc(nil)
	}
	if store == nil {
		store = inboxtest.NewMemory()
	}
	if rate.PerSecond == 0 {
		rate = ratelimit.Options{PerSecond: 1000, Burst: 1000}
	}
	return pub, store, rate
}

// PublishFunc is a messages.Publisher made of a func; the nil PublishFunc
// confirms every publish.
type PublishFunc func(ctx context.Context, env *courierv1.Envelope) error

// Publish calls f.
func (f PublishFunc) Publish(ctx context.Context, env *courierv1.Envelope) error {
	if f == nil {
		return nil
	}
	return f(ctx, env)
}

// Failing returns a PublishFunc whose every publish fails with err.
func Failing(err error) PublishFunc {
	return func(context.Context, *courierv1.Envelope) error { return err }
}

// Recorder is a Publisher that confirms every publish and keeps the
// envelopes, in order.
type Recorder struct {
	mu   sync.Mutex
	envs []*courierv1.Envelope
}

// Publish records env.
func (r *Recorder) Publish(_ context.Context, env *courierv1.Envelope) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.envs = append(r.envs, env)
	return nil
}

// Published returns the envelopes published so far.
func (r *Recorder) Published() []*courierv1.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*courierv1.Envelope(nil), r.envs...)
}

// Reset forgets what was published.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.envs = nil
}
