package debugserver

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestOffWhenAddrEmpty(t *testing.T) {
	s, err := Start("", slog.New(slog.DiscardHandler))
	if err != nil || s != nil {
		t.Fatalf("Start(\"\") = %v, %v; want nil, nil", s, err)
	}
	if s.Addr() != "" || s.Close() != nil {
		t.Fatal("a nil server must have no address and close without error")
	}
}

func TestServesMemstatsAndPprof(t *testing.T) {
	s, err := Start("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()

	resp, err := http.Get(base + "/debug/memstats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("memstats: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Goroutines < 1 || st.MemStats.HeapAlloc == 0 || st.MemStats.StackInuse == 0 || st.MemStats.NumGC == 0 {
		t.Fatalf("implausible stats: goroutines %d, heap %d, stacks %d, GCs %d (a GC is forced first)",
			st.Goroutines, st.MemStats.HeapAlloc, st.MemStats.StackInuse, st.MemStats.NumGC)
	}

	resp, err = http.Get(base + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof goroutine profile: status %d, body %.80q", resp.StatusCode, body)
	}
}

func TestBadAddrNamesTheVariable(t *testing.T) {
	_, err := Start("127.0.0.1:notaport", slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "DEBUG_ADDR") {
		t.Fatalf("err = %v, want one naming DEBUG_ADDR", err)
	}
}
