package clip_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/courierhq/courier/pkg/clip"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven chars", 10, "eleven …"},
		{"ééééé", 6, "é…"}, // 10 bytes; "é" is 2, "…" is 3: one é fits
		{"abc", 2, ""},
	} {
		got := clip.Text(tc.in, tc.n)
		if got != tc.want || len(got) > max(tc.n, len(tc.in)) || !utf8.ValidString(got) {
			t.Errorf("Text(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	long := strings.Repeat("日本", 1000)
	if got := clip.Text(long, 1024); len(got) > 1024 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("%d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}
