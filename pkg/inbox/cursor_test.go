package inbox

import (
	"errors"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 1, 42, 1 << 40} {
		got, err := DecodeCursor(EncodeCursor(n))
		if err != nil || got != n {
			t.Errorf("round trip %d: %d %v", n, got, err)
		}
	}
	if n, err := DecodeCursor(""); n != 0 || err != nil {
		t.Errorf("empty cursor: %d %v", n, err)
	}
	for _, bad := range []string{"!!", "Yzo", "YzEuLTE", "YzEuMDE", "eDEuMQ", string(make([]byte, 100))} {
		if _, err := DecodeCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor(7))
	f.Add("")
	f.Add("YzEuLTE")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := DecodeCursor(s)
		if err == nil && s != "" && EncodeCursor(n) != s {
			t.Fatalf("accepted non-canonical cursor %q as %d", s, n)
		}
	})
}
