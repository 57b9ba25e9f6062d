package edge_test

import (
	"testing"

	"github.com/courierhq/courier/pkg/wire"
)

// The sender's copy reaches the sender's session live, marked outgoing; a
// WebSocket ack becomes a delivered receipt to the sender; a
// `read` frame moves the reader's marker: every session of the reader, on
// both pods, gets the `read` frame, and the sender's session a coalesced
// read receipt naming the reader; a bad read frame is answered bad_read.
func TestReadFrameAndReceiptAcrossPods(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a")
	b := startEdge(t, w, "edge-b")
	alice := dial(t, a, "alice", dialOpts{})
	bob := dial(t, b, "bob", dialOpts{})
	bob2 := dial(t, a, "bob", dialOpts{})
	for _, c := range []*wsClient{alice, bob, bob2} {
		c.expect(t, "hello", "synced")
	}
	st := w.commit(t, "m1", "alice", "", "bob")
	w.publish(t, st)
	f := bob.expect(t, "message:m1")[0]
	bob2.expect(t, "message:m1")
	if own := alice.expect(t, "message:m1")[0]; !own.msg().Outgoing || f.msg().Outgoing {
		t.Fatalf("outgoing: alice's copy %v, bob's %v", own.msg().Outgoing, f.msg().Outgoing)
	}
	conv := wire.DeriveConversationID([]string{"alice", "bob"})
	// bob's WebSocket ack becomes a delivered receipt on alice's session.
	bob.sendText(t, `{"type":"ack","id":"m1"}`)
	if r := alice.expect(t, "receipt")[0]; r.Kind != "delivered" || r.MessageID != "m1" || r.User != "bob" || r.Conversation != conv {
		t.Fatalf("delivered receipt %+v", r)
	}
	bob.sendText(t, `{"type":"read","conversation":"`+conv+`","cursor":"`+f.Cursor+`"}`)
	for _, c := range []*wsClient{bob, bob2} {
		if r := c.expect(t, "read")[0]; r.Conversation != conv || r.Cursor != f.Cursor {
			t.Fatalf("read frame %+v", r)
		}
	}
	if r := alice.expect(t, "receipt")[0]; r.Kind != "read" || r.MessageID != "m1" || r.User != "bob" || r.Conversation != conv {
		t.Fatalf("receipt %+v", r)
	}
	bob.sendText(t, `{"type":"read","conversation":"d.x/y","cursor":"`+f.Cursor+`"}`)
	bob.expect(t, "error:bad_read")
}
