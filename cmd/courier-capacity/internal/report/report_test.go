package report

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocQuotesOutput holds docs/capacity.md to the program: each of the
// report's sections (the inputs, then tables 1 to 4) must appear there
// verbatim in a text block, so the page cannot explain numbers the
// program no longer prints.
func TestDocQuotesOutput(t *testing.T) {
	var b strings.Builder
	if err := Write(&b); err != nil {
		t.Fatalf("write the report: %v", err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "docs", "capacity.md"))
	if err != nil {
		t.Fatalf("read docs/capacity.md: %v", err)
	}
	sections := splitSections(b.String())
	if len(sections) != 5 {
		t.Fatalf("report has %d sections, want 5 (inputs and tables 1-4)", len(sections))
	}
	for i, s := range sections {
		if !strings.Contains(string(doc), "```text\n"+s+"\n```") {
			first, _, _ := strings.Cut(s, "\n")
			t.Errorf("docs/capacity.md does not quote section %d (%q) verbatim: run `make capacity` and paste it", i, first)
		}
	}
}

var sectionStart = regexp.MustCompile(`(?m)^\d\. `)

// splitSections cuts the report before each numbered table, trimming blank
// lines at both ends of each part.
func splitSections(out string) []string {
	var parts []string
	idx := sectionStart.FindAllStringIndex(out, -1)
	prev := 0
	for _, ix := range idx {
		parts = append(parts, strings.Trim(out[prev:ix[0]], "\n"))
		prev = ix[0]
	}
	return append(parts, strings.Trim(out[prev:], "\n"))
}

func TestNumbers(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{{0, "0"}, {0.036, "0.036"}, {2.91, "2.91"}, {33.33, "33.3"}, {240, "240"}, {3636.4, "3,636"},
		{1e6, "1M"}, {1.04e6, "1.04M"}, {1.58e9, "1.58G"}, {-1234, "-1,234"}} {
		if got := num(tt.v); got != tt.want {
			t.Errorf("num(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	if got := usd(7807771.4); got != "$7,807,771" {
		t.Errorf("usd = %q", got)
	}
}
