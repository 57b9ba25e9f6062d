package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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
