package frame_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

func TestAppendCursorMatchesInbox(t *testing.T) {
	for _, seq := range []int64{0, 1, 9, 10, 12345, 1<<62 + 7} {
		if got, want := string(frame.AppendCursor(nil, seq)), inbox.EncodeCursor(seq); got != want {
			t.Errorf("seq %d: %q, want %q", seq, got, want)
		}
	}
}

func TestItemFrameIsTheWireMessageWithItsCursor(t *testing.T) {
	m := &courierv1.Message{Id: "m1", From: "alice", To: []string{"bob", "carol"},
		// Whitespace with newlines in the payload must not survive: batched
		// frames are split on '\n'.
		Payload: []byte("{\n  \"text\": \"hi\\nthere\"\n}"), ContentType: "application/json", SentAt: timestamppb.Now()}
	msg, err := frame.NewMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []int64{1, 42} {
		b := frame.Item{M: msg, Seq: seq}.Append([]byte("keep"))
		if !bytes.HasPrefix(b, []byte("keep")) {
			t.Fatal("Append dropped dst")
		}
		b = b[4:]
		if bytes.ContainsRune(b, frame.Separator) {
			t.Fatalf("frame holds a raw newline: %s", b)
		}
		var f struct {
			Type    string            `json:"type"`
			Message inbox.WireMessage `json:"message"`
			Cursor  string            `json:"cursor"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		if f.Type != "message" || f.Cursor != inbox.EncodeCursor(seq) || f.Message.ID != "m1" ||
			f.Message.ToCount != 2 || len(f.Message.To) != 2 || !strings.Contains(string(f.Message.Payload), `"hi\nthere"`) {
			t.Fatalf("frame %+v", f)
		}
	}
}

func TestControlFrames(t *testing.T) {
	for _, b := range [][]byte{frame.Hello("s", "p", "u", true), frame.Synced(7), frame.Error("bad", "no\nnewline"), frame.Pong} {
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil || f["type"] == nil {
			t.Fatalf("%s: %v", b, err)
		}
		if bytes.ContainsRune(b, frame.Separator) {
			t.Fatalf("raw newline in %s", b)
		}
	}
	var s struct{ Cursor string }
	_ = json.Unmarshal(frame.Synced(7), &s)
	if s.Cursor != inbox.EncodeCursor(7) {
		t.Fatalf("synced cursor %q", s.Cursor)
	}
}

func BenchmarkItemAppend(b *testing.B) {
	m := &courierv1.Message{Id: "01JABCDEFGHJKMNPQRSTVWXYZ0", From: "alice", ToCount: 1000,
		Payload: []byte(`{"text":"` + strings.Repeat("x", 200) + `"}`), ContentType: "application/json", SentAt: timestamppb.Now()}
	msg, err := frame.NewMessage(m)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = frame.Item{M: msg, Seq: int64(i)}.Append(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
