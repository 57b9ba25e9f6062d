// Package telemetry sets up OpenTelemetry tracing and structured logging the
// same way in every Courier service: an OTLP gRPC exporter configured by the
// standard OTEL_* variables, W3C TraceContext + Baggage propagation, and a
// log/slog JSON handler that stamps trace and span ids on every line.
package telemetry

import (
	"context"
	"errors"

	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Options names the service in its resource.
type Options struct {
	ServiceName string
	Version     string
	// Logger receives export errors (rate limited). Defaults to slog.Default().
	Logger *slog.Logger
}

// Setup installs the global tracer provider and propagators and returns one
// shutdown func that flushes and stops them; call it last, with a fresh
// context, so spans of the shutdown itself are exported.
//
// Without OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// spans are still created, so logs carry trace ids, but nothing is exported.
// OTEL_TRACES_EXPORTER=none disables export even with an endpoint.
// Sampling follows OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG and the
// batch processor OTEL_BSP_*: the SDK reads them itself.
func Setup(ctx context.Context, o Options) (shutdown func(context.Context) error, err error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(newRateLimitedHandler(logger, time.Minute))

	// Schemaless: the SDK's default resource carries its own semconv schema
	// URL, and merging two different schema URLs is an error.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(o.ServiceName),
		semconv.ServiceVersion(o.Version),
	))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME win over the defaults.
	if envRes, envErr := resource.New(ctx, resource.WithFromEnv()); envErr == nil {
		if merged, mErr := resource.Merge(res, envRes); mErr == nil {
			res = merged
		}
	}

	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exporterEnabled() {
		// The exporter dials lazily and never blocks: with no collector the
		// batch processor drops spans when its bounded queue is full and the
		// error handler logs at most once a minute.
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("telemetry shutdown: %w", err)
		}
		return nil
	}, nil
}

func exporterEnabled() bool {
	if os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// rateLimitedHandler logs OpenTelemetry errors, at most one per interval, so
// an absent collector costs a log line rather than a flood.
type rateLimitedHandler struct {
	logger  *slog.Logger
	every   time.Duration
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func newRateLimitedHandler(l *slog.Logger, every time.Duration) *rateLimitedHandler {
	return &rateLimitedHandler{logger: l, every: every}
}

func (h *rateLimitedHandler) Handle(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.Sub(h.last) >= h.every {
		h.logger.Warn("opentelemetry error", "err", err, "suppressed", h.dropped)
		h.last, h.dropped = now, 0
		return
	}
	h.dropped++
}

// FlushLast runs shutdown (what Setup returned) with a fresh deadline — the
// service's own context is cancelled by then — and joins its error into
// *err. Defer it right after Setup, so it runs after everything else and
// the shutdown's own spans are exported.
func FlushLast(shutdown func(context.Context) error, err *error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	*err = errors.Join(*err, shutdown(ctx))
}

// NewRegistry returns a Prometheus registry with the Go runtime and
// process collectors, for a service's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
