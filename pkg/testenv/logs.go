package testenv

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// LogBuffer collects what concurrent writers log (a server's goroutines, a
// child process's stdout and stderr) for a test to read.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines returns the JSON log lines (log/slog's JSON handler) whose msg is
// msg; lines that are not JSON objects are passed over.
func (l *LogBuffer) Lines(msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// ShowOnFailure logs everything written, under the heading what, when t
// has failed by its end: a component's log is noise in a passing test and
// the first clue in a failing one.
func (l *LogBuffer) ShowOnFailure(t testing.TB, what string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", what, l.String())
		}
	})
}
