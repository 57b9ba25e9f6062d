package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// LogOptions configures NewLogger.
type LogOptions struct {
	Level slog.Leveler
	// GCPProject, when set, adds the Cloud Logging fields
	// (logging.googleapis.com/trace, .../spanId, severity) so that Cloud
	// Logging links each line to its trace.
	GCPProject string
}

// NewLogger returns a JSON logger whose lines inside a span carry trace_id
// and span_id.
func NewLogger(w io.Writer, o LogOptions) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: o.Level}
	if o.GCPProject != "" {
		hopts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.String("severity", strings.ToUpper(a.Value.String()))
			}
			if len(groups) == 0 && a.Key == slog.MessageKey {
				a.Key = "message"
			}
			return a
		}
	}
	return slog.New(&traceHandler{Handler: slog.NewJSONHandler(w, hopts), gcpProject: o.GCPProject})
}

// ParseLevel maps "debug", "info", "warn", "error" to a slog level (info
// for anything else).
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

type traceHandler struct {
	slog.Handler
	gcpProject string
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		if h.gcpProject != "" {
			r.AddAttrs(
				slog.String("logging.googleapis.com/trace", "projects/"+h.gcpProject+"/traces/"+sc.TraceID().String()),
				slog.String("logging.googleapis.com/spanId", sc.SpanID().String()),
				slog.Bool("logging.googleapis.com/trace_sampled", sc.IsSampled()),
			)
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &traceHandler{Handler: h.Handler.WithAttrs(attrs), gcpProject: h.gcpProject}
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	return &traceHandler{Handler: h.Handler.WithGroup(name), gcpProject: h.gcpProject}
}
