package telemetry

import (
	"log/slog"
	"os"

	"github.com/courierhq/courier/pkg/config"
)

// LoggerFromEnv builds the service logger from LOG_LEVEL (debug, info, warn,
// error; default info) and LOG_FORMAT ("json", the default, or "gcp", which
// adds Cloud Logging's severity and trace fields for GOOGLE_CLOUD_PROJECT).
func LoggerFromEnv(e *config.Env) *slog.Logger {
	o := LogOptions{Level: ParseLevel(e.String("LOG_LEVEL", "info"))}
	switch f := e.String("LOG_FORMAT", "json"); f {
	case "json":
	case "gcp":
		o.GCPProject = e.String("GOOGLE_CLOUD_PROJECT", "")
	default:
		e.Check("LOG_FORMAT", errBadFormat(f))
	}
	return NewLogger(os.Stderr, o)
}

type errBadFormat string

func (f errBadFormat) Error() string {
	return "unknown log format " + string(f) + ` (want "json" or "gcp")`
}
