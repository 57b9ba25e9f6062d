package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// A request from outside Courier (an app, a browser) carries a trace context
// and baggage that anyone can forge: a traceparent with the sampled flag set
// would make Courier record and export every span of the message's journey,
// and baggage would ride along in every Pub/Sub message's attributes. At its
// entry points Courier therefore trusts neither: the server span is a new
// root, sampled by Courier's own policy (OTEL_TRACES_SAMPLER), with a span
// link to the caller's span so the two traces stay one click apart; inbound
// baggage is dropped. Inside Courier (Pub/Sub attributes between its own
// services) the global propagator carries both as usual.

// Untrusted is the propagator of an entry point's server instrumentation: it
// extracts nothing, so neither the caller's sampling decision nor its baggage
// enters the request's context. See CallerLink for the link.
var Untrusted propagation.TextMapPropagator = untrusted{}

type untrusted struct{}

func (untrusted) Inject(context.Context, propagation.TextMapCarrier) {}
func (untrusted) Extract(ctx context.Context, _ propagation.TextMapCarrier) context.Context {
	return ctx
}
func (untrusted) Fields() []string { return nil }

// LinkCaller adds to the span in ctx a link to the caller's span named by the
// W3C traceparent in carrier, if there is a valid one. A link says "related"
// without letting the caller decide anything about this trace.
func LinkCaller(ctx context.Context, carrier propagation.TextMapCarrier) {
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
	if sc.IsValid() {
		trace.SpanFromContext(ctx).AddLink(trace.Link{SpanContext: sc})
	}
}
