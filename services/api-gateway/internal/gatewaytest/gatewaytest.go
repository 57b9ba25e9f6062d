// Package gatewaytest holds what the gateway's tests share (messages,
// httpapi and grpcapi): a publisher made of a func, and the rate limits of
// a test server. The inbox store they read is pkg/inbox/inboxtest's
// Memory. Only tests import it.
package gatewaytest

import (
	"context"
	"sync"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/ratelimit"
)

// Publisher is a messages.Publisher made of a func; the nil Publisher
// confirms every publish.
type Publisher func(ctx context.Context, env *courierv1.Envelope) error

// Publish calls f.
func (f Publisher) Publish(ctx context.Context, env *courierv1.Envelope) error {
	if f == nil {
		return nil
	}
	return f(ctx, env)
}

// Failing returns a Publisher whose every publish fails with err.
func Failing(err error) Publisher {
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

// Unlimited is a rate limit no functional test reaches; tests of the limit
// set their own.
var Unlimited = ratelimit.Options{PerSecond: 1000, Burst: 1000}
