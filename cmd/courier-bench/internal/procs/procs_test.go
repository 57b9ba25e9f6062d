package procs

import (
	"strings"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may contain spaces and parentheses.
	line := "1234 (ws edge (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 100"
	got, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if got != 3.0 { // (250 + 50) ticks at 100 Hz
		t.Fatalf("CPU seconds = %v, want 3", got)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("malformed stat accepted")
	}
}

func TestParseMetricsSumsLabelSets(t *testing.T) {
	text := `# HELP x y
# TYPE courier_ws_edge_disconnects_total counter
courier_ws_edge_disconnects_total{code="1000"} 3
courier_ws_edge_disconnects_total{code="1008",reason="a b}"} 2
go_goroutines 42
go_memstats_heap_alloc_bytes 1.5e+06
`
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"courier_ws_edge_disconnects_total": 5, "go_goroutines": 42, "go_memstats_heap_alloc_bytes": 1.5e6,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
}

// Idle and iowait are not busy; guest columns are already in user.
func TestParseCPULine(t *testing.T) {
	busy, all := parseCPULine("cpu  100 5 50 800 40 3 2 0 10 0")
	if busy != 160 || all != 1000 {
		t.Fatalf("busy %v all %v, want 160 1000", busy, all)
	}
	if b, a := parseCPULine("cpu0 1 2 3 4"); b != 0 || a != 0 {
		t.Fatalf("a per-CPU line was read: %v %v", b, a)
	}
}
