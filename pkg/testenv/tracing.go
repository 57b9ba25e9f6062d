package testenv

import (
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// RecordSpans makes a recorder of every ended span the process's tracer
// provider, with the W3C propagators the services install (trace context
// and baggage), and returns the recorder. Call it from TestMain: tests of
// the package share it and find their spans by trace or message id.
func RecordSpans() *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return rec
}

// RecordTestSpans is RecordSpans for one test: the previous tracer provider
// and propagator come back when t ends.
func RecordTestSpans(t testing.TB) *tracetest.SpanRecorder {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
	})
	return RecordSpans()
}
