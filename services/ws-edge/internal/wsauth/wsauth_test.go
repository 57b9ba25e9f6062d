package wsauth

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

func TestParseFrame(t *testing.T) {
	for _, tc := range []struct {
		typ  websocket.MessageType
		in   string
		tok  string
		want error
	}{
		{websocket.MessageText, `{"type":"auth","token":"abc"}`, "abc", nil},
		{websocket.MessageText, ` {"token":"abc","type":"auth"} `, "abc", nil},
		{websocket.MessageBinary, `{"type":"auth","token":"abc"}`, "", ErrNotText},
		{websocket.MessageText, `{"type":"auth"}`, "", ErrNoToken},
		{websocket.MessageText, `{"type":"ping"}`, "", ErrNotAuth},
		{websocket.MessageText, `{"type":"auth","token":1}`, "", ErrBadJSON},
		{websocket.MessageText, `{"type":"auth","token":"a"} {}`, "", ErrBadJSON},
		{websocket.MessageText, `abc`, "", ErrBadJSON},
		{websocket.MessageText, `{"type":"auth","token":"` + strings.Repeat("a", MaxFrameBytes) + `"}`, "", ErrTooLarge},
	} {
		tok, err := ParseFrame(tc.typ, []byte(tc.in))
		if tok != tc.tok || !errors.Is(err, tc.want) {
			t.Errorf("ParseFrame(%q) = %q, %v; want %q, %v", tc.in, tok, err, tc.tok, tc.want)
		}
	}
}

// FuzzParseFrame: no panic; either a non-empty token or one of the
// documented errors; a token read back re-encodes to a frame that parses to
// the same token.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{`{"type":"auth","token":"eyJ.a.b"}`, `{"type":"auth"}`, `{"type":"ack","id":"m"}`, `null`, `[]`, `{"type":"auth","token":"\u0000"}`, "{\"type\":\"auth\",\"token\":\"\xff\"}"} {
		f.Add(true, []byte(s))
	}
	f.Add(false, []byte(`{"type":"auth","token":"x"}`))
	documented := []error{ErrNotText, ErrBadJSON, ErrNotAuth, ErrNoToken, ErrTooLarge}
	f.Fuzz(func(t *testing.T, text bool, data []byte) {
		typ := websocket.MessageBinary
		if text {
			typ = websocket.MessageText
		}
		tok, err := ParseFrame(typ, data)
		if err != nil {
			for _, d := range documented {
				if errors.Is(err, d) {
					return
				}
			}
			t.Fatalf("undocumented error %v", err)
		}
		if tok == "" || !text || len(data) > MaxFrameBytes {
			t.Fatalf("accepted %q from %q", tok, data)
		}
		again, err := json.Marshal(authFrame{Type: "auth", Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if len(again) > MaxFrameBytes {
			return // JSON escaping made it longer than a frame may be
		}
		if back, err := ParseFrame(websocket.MessageText, again); err != nil || back != tok {
			t.Fatalf("round trip of %q: %q %v", tok, back, err)
		}
	})
}
