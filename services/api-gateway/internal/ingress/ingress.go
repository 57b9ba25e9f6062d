// Package ingress publishes validated envelopes to the ingress topic, in
// the format of wire.EncodeEnvelope, with the W3C trace context (through
// pubsubx.Publish), and bounds how long and how many publishes may wait.
package ingress

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Options tune the publisher. The gateway sets each from its settings
// (PUBLISH_TIMEOUT, PUBLISH_MAX_OUTSTANDING, PUBLISH_DELAY_THRESHOLD).
type Options struct {
	// Timeout bounds one publish; on expiry the caller answers
	// 503 and the client retries with its idempotency key.
	Timeout time.Duration
	// MaxOutstanding caps messages waiting for Pub/Sub; beyond it a publish
	// fails at once (503) instead of queueing without bound.
	MaxOutstanding int
	// DelayThreshold is how long the client batches before sending (a
	// request waits for it, so keep it short).
	DelayThreshold time.Duration
	// Latency, when set, observes each publish by result ("ok", "error").
	Latency *prometheus.HistogramVec
}

// Publisher publishes envelopes to one topic. Safe for concurrent use.
type Publisher struct {
	p       *pubsub.Publisher
	timeout time.Duration
	latency *prometheus.HistogramVec
}

// New returns a Publisher on topic (an id or a full topic name). Message
// ordering is on: the sender id is the ordering key, so one sender's
// messages reach the worker in the order the gateway accepted them (hence
// in order to each recipient).
func New(client *pubsub.Client, topic string, o Options) *Publisher {
	// Tests pass partial Options; zero would mean no bound at all (or the
	// client library's own values), so they get the gateway's defaults.
	// The binary never relies on this: settings.go sets all three.
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxOutstanding <= 0 {
		o.MaxOutstanding = 1000
	}
	if o.DelayThreshold <= 0 {
		o.DelayThreshold = 5 * time.Millisecond
	}
	p := client.Publisher(topic)
	p.EnableMessageOrdering = true
	p.PublishSettings.DelayThreshold = o.DelayThreshold
	p.PublishSettings.Timeout = o.Timeout
	p.PublishSettings.FlowControlSettings = pubsub.FlowControlSettings{
		MaxOutstandingMessages: o.MaxOutstanding,
		MaxOutstandingBytes:    -1,
		LimitExceededBehavior:  pubsub.FlowControlSignalError,
	}
	return &Publisher{p: p, timeout: o.Timeout, latency: o.Latency}
}

// Publish publishes env and waits for Pub/Sub's confirmation, at most the
// configured timeout.
func (p *Publisher) Publish(ctx context.Context, env *courierv1.Envelope) error {
	msg, err := wire.EncodeEnvelope(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	_, err = pubsubx.Publish(ctx, p.p, msg, env.GetMessageId())
	if p.latency != nil {
		result := "ok"
		if err != nil {
			result = "error"
		}
		p.latency.WithLabelValues(result).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return fmt.Errorf("publish envelope %s: %w", env.GetMessageId(), err)
	}
	return nil
}

// Stop flushes what is still being published and stops the publisher;
// later publishes fail. Call it after the servers stopped taking requests.
func (p *Publisher) Stop() { p.p.Stop() }
