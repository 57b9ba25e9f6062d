package inbox

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadCursor is returned for a cursor that this package did not produce.
var ErrBadCursor = errors.New("malformed cursor")

const cursorPrefix = "c1."

// EncodeCursor makes the opaque cursor of inbox position seq. A cursor is
// only a position: it is always read inside the authenticated caller's own
// inbox, so presenting someone else's cursor reveals nothing of theirs.
func EncodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// DecodeCursor returns the position of a cursor; "" is the start (0).
func DecodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	if len(c) > 64 {
		return 0, fmt.Errorf("%w: too long", ErrBadCursor)
	}
	// Strict: a cursor has one spelling (lenient decoding accepted any
	// trailing bits, so "YzEuN0" read as the canonical "YzEuNw").
	raw, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil {
		return 0, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	s, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return 0, fmt.Errorf("%w: unknown version", ErrBadCursor)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%w: bad position", ErrBadCursor)
	}
	// The decoder also skips '\r' and '\n' anywhere in the input: only
	// the exact encoding of the position is its cursor.
	if EncodeCursor(n) != c {
		return 0, fmt.Errorf("%w: not the canonical spelling", ErrBadCursor)
	}
	return n, nil
}
