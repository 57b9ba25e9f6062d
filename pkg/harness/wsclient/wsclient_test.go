package wsclient

import (
	"encoding/json"
	"testing"
)

func TestSplitBatchedMessage(t *testing.T) {
	var parts []string
	Split([]byte("{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\n"), func(p []byte) { parts = append(parts, string(p)) })
	want := []string{`{"a":1}`, `{"b":2}`, `{"c":3}`}
	if len(parts) != len(want) {
		t.Fatalf("parts = %q, want %q", parts, want)
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Fatalf("parts = %q, want %q", parts, want)
		}
	}
}

func TestParseFrames(t *testing.T) {
	msg := `{"type":"message","message":{"id":"m1","from":"a","to":["b"],"payload":{"s":4711,"p":"xx"},"content_type":"application/json","sent_at":"2026-01-01T00:00:00Z"},"cursor":"YzEuMQ"}`
	spaced := `{"cursor":"YzEuMQ", "message": {"payload": {"p": "xx", "s": 12}}, "type": "message"}`
	tests := []struct {
		name string
		in   string
		kind Kind
		seq  int64
	}{
		{"compact message", msg, Message, 4711},
		{"other field order and spaces", spaced, Message, 12},
		{"foreign payload", `{"type":"message","message":{"payload":"hi"}}`, Message, -1},
		{"synced", `{"type":"synced","cursor":"YzEuMA"}`, Synced, -1},
		{"error", `{"type":"error","code":"bad_json","message":"m"}`, Error, -1},
		{"hello", `{"type":"hello","session_id":"s"}`, Other, -1},
		{"spaced synced", `{"type": "synced"}`, Synced, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Parse([]byte(tc.in))
			if f.Kind != tc.kind || f.Seq != tc.seq {
				t.Fatalf("Parse = kind %d seq %d, want kind %d seq %d", f.Kind, f.Seq, tc.kind, tc.seq)
			}
		})
	}
}

// The accounting needs every message frame's cursor (its inbox position)
// and id (what an ack names).
func TestParseCursorAndID(t *testing.T) {
	msg := `{"type":"message","message":{"id":"m1","from":"a","to":["b"],"payload":{"s":4711,"p":"xx"}},"cursor":"YzEuMQ"}`
	if f := Parse([]byte(msg)); f.Cursor != 1 || f.ID != "m1" {
		t.Fatalf("compact frame: cursor %d id %q, want 1 m1", f.Cursor, f.ID)
	}
	spaced := `{"cursor": "YzEuNDI", "message": {"payload": {"s": 12}, "id": "m2"}, "type": "message"}`
	if f := Parse([]byte(spaced)); f.Cursor != 42 || f.ID != "m2" || f.Seq != 12 {
		t.Fatalf("spaced frame: %+v, want cursor 42 id m2 seq 12", f)
	}
	if f := Parse([]byte(`{"type":"synced","cursor":"YzEuNw"}`)); f.Cursor != 7 {
		t.Fatalf("synced cursor %d, want 7", f.Cursor)
	}
	if f := Parse([]byte(`{"type":"message","message":{"id":"x","payload":{"s":1}},"cursor":"!!"}`)); f.Cursor != -1 {
		t.Fatalf("an undecodable cursor reads %d, want -1", f.Cursor)
	}
}

func TestPayloadSizeAndShape(t *testing.T) {
	p := Payload(123, 200)
	if len(p) != 200 {
		t.Fatalf("payload is %d bytes, want 200", len(p))
	}
	var v struct {
		S int64  `json:"s"`
		P string `json:"p"`
	}
	if err := json.Unmarshal(p, &v); err != nil || v.S != 123 {
		t.Fatalf("payload %s: %v, s=%d", p, err, v.S)
	}
	frame := `{"type":"message","message":{"payload":` + string(p) + `}}`
	if f := Parse([]byte(frame)); f.Seq != 123 {
		t.Fatalf("the fast path does not find the payload's sequence: %+v", f)
	}
}
