package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/courierhq/courier/pkg/testenv"
)

func TestLoggerAddsTraceIDs(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "op")
	defer span.End()

	for _, tc := range []struct {
		name    string
		project string
		wantGCP bool
	}{{"plain", "", false}, {"gcp", "proj", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			NewLogger(&buf, LogOptions{GCPProject: tc.project}).With("k", "v").InfoContext(ctx, "hello")
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("not JSON: %q", buf.String())
			}
			if line["trace_id"] != span.SpanContext().TraceID().String() || line["span_id"] != span.SpanContext().SpanID().String() {
				t.Errorf("ids missing or wrong: %v", line)
			}
			_, hasGCP := line["logging.googleapis.com/trace"]
			if hasGCP != tc.wantGCP {
				t.Errorf("gcp trace field present=%v, want %v: %v", hasGCP, tc.wantGCP, line)
			}
			if tc.wantGCP && line["severity"] != "INFO" {
				t.Errorf("severity = %v", line["severity"])
			}
		})
	}

	var buf bytes.Buffer
	NewLogger(&buf, LogOptions{}).Info("outside a span")
	var line map[string]any
	_ = json.Unmarshal(buf.Bytes(), &line)
	if _, ok := line["trace_id"]; ok {
		t.Errorf("trace_id outside a span: %v", line)
	}
}

func TestSetupSucceedsWithAndWithoutExporter(t *testing.T) {
	for _, endpoint := range []string{"", "http://127.0.0.1:1"} {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
		shutdown, err := Setup(context.Background(), Options{ServiceName: "svc", Version: "v1"})
		if err != nil {
			t.Fatalf("endpoint %q: %v", endpoint, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = shutdown(ctx) // an unreachable collector may fail the final flush; Setup must not
		cancel()
	}
}

// TestMissingCollectorCostsOneLogLine exports to a port where nothing
// listens: span creation goes on (the batch processor's queue is bounded and
// drops), and the repeated export failures produce at most one log line per
// minute.
func TestMissingCollectorCostsOneLogLine(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "200")
	var buf testenv.LogBuffer
	logger := NewLogger(&buf, LogOptions{})
	shutdown, err := Setup(context.Background(), Options{ServiceName: "svc", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	tr := otel.Tracer("t")
	for range 5000 {
		_, span := tr.Start(context.Background(), "op")
		span.End()
	}
	// Give the exporter several failing rounds before shutting down.
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = otel.GetTracerProvider().(interface{ ForceFlush(context.Context) error }).ForceFlush(ctx)
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = shutdown(ctx)
	lines := strings.Count(strings.TrimSpace(buf.String()), "\n") + 1
	if buf.String() == "" {
		lines = 0
	}
	if lines > 1 {
		t.Fatalf("%d log lines for export failures, want at most 1:\n%s", lines, buf.String())
	}
}
