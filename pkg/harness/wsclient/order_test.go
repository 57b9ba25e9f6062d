package wsclient

import (
	"fmt"
	"testing"

	"github.com/courierhq/courier/pkg/inbox"
)

func frame(kind string, pos int64, id string) []byte {
	return fmt.Appendf(nil, `{"type":%q,"message":{"id":%q},"cursor":%q}`, kind, id, inbox.EncodeCursor(pos))
}

// Order accepts rising cursors and names a repeat, a step back and a
// missing cursor; a resume starts after its cursor.
func TestOrder(t *testing.T) {
	var o Order
	for _, f := range [][]byte{frame("synced", 0, ""), frame("message", 1, "a"), frame("message", 3, "b"), frame("synced", 3, "")} {
		if err := o.Observe(Parse(f)); err != nil {
			t.Fatal(err)
		}
	}
	if o.Last() != 3 || o.Count.Messages != 2 {
		t.Fatalf("last %d, counts %+v", o.Last(), o.Count)
	}
	if err := o.Observe(Parse(frame("message", 3, "b"))); err == nil {
		t.Fatal("a repeated position was accepted")
	}
	if err := o.Observe(Parse(frame("message", 2, "c"))); err == nil {
		t.Fatal("a step back was accepted")
	}
	if err := o.Observe(Parse([]byte(`{"type":"message","message":{"id":"d"}}`))); err == nil {
		t.Fatal("a message without a cursor was accepted")
	}
	if o.Count.OutOfOrder != 2 || o.Count.NoCursor != 1 {
		t.Fatalf("counts %+v", o.Count)
	}
	var r Order
	r.After(10)
	if err := r.Observe(Parse(frame("message", 10, "e"))); err == nil {
		t.Fatal("a resume after 10 accepted position 10 again")
	}
	// A resume from a cursor past the head is clamped: synced below the
	// cursor, then the messages after the head.
	var c Order
	c.After(5)
	for _, f := range [][]byte{frame("synced", 0, ""), frame("message", 1, "f"), frame("message", 2, "g")} {
		if err := c.Observe(Parse(f)); err != nil {
			t.Fatalf("clamped resume: %v", err)
		}
	}
	if err := c.Observe(Parse(frame("synced", 1, ""))); err == nil {
		t.Fatal("synced below the last message was accepted")
	}
}
