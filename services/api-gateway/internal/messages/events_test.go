package messages_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/receipts"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/messages"
)

type events struct {
	mu       sync.Mutex
	frames   []string
	receipts []receipts.Receipt
}

func (e *events) Publish(_ context.Context, users []string, kind string, frame []byte) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.frames = append(e.frames, fmt.Sprint(users, " ", kind, " ", string(frame)))
	return true
}

func (e *events) Receipt(r receipts.Receipt) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.receipts = append(e.receipts, r)
}

// A read marker that moves sends the reader's sessions a `read` frame and
// one read receipt per message it passed (coalesced later by
// pkg/receipts); one that does not move sends nothing. A REST ack sends a
// delivered receipt to the sender.
func TestReadAndAckEvents(t *testing.T) {
	store := inboxtest.NewMemory()
	big := make([]string, 20)
	for i := range big {
		big[i] = fmt.Sprintf("u%02d", i)
	}
	big[0] = "bo"
	inboxtest.MustCommit(t, store,
		inboxtest.Envelope("m1", "ann", "bo"), inboxtest.Envelope("m2", "bo", "ann"), inboxtest.Envelope("m3", "ann", "bo"),
		&courierv1.Envelope{MessageId: "b1", Sender: "ann", Recipients: big, Payload: []byte(`1`), ConversationId: "all", SentAt: inboxtest.Envelope("x", "a", "b").SentAt})
	var ev events
	svc := messages.New(nil, store, messages.Limits{}).WithEvents(&ev)
	ctx := context.Background()
	dm := wire.DeriveConversationID([]string{"ann", "bo"})
	st, err := svc.MarkRead(ctx, "bo", dm, inbox.EncodeCursor(3))
	if err != nil || !st.Moved {
		t.Fatalf("mark read %+v %v", st, err)
	}
	if len(ev.frames) != 1 || ev.frames[0] != fmt.Sprintf(`[bo] read {"type":"read","conversation":"%s","cursor":"%s"}`, dm, inbox.EncodeCursor(3)) {
		t.Fatalf("frames %v", ev.frames)
	}
	var got []string
	for _, r := range ev.receipts {
		got = append(got, r.Kind+":"+r.Sender+":"+r.MessageID+":"+r.Reader)
	}
	// bo's own m2 (outgoing in his inbox) gets no receipt.
	if fmt.Sprint(got) != "[read:ann:m1:bo read:ann:m3:bo]" {
		t.Fatalf("receipts %v", got)
	}
	ev.frames, ev.receipts = nil, nil
	if _, err := svc.MarkRead(ctx, "bo", dm, inbox.EncodeCursor(1)); err != nil || len(ev.frames)+len(ev.receipts) != 0 {
		t.Fatalf("a marker that did not move sent %v %v (%v)", ev.frames, ev.receipts, err)
	}
	if err := svc.Ack(ctx, "bo", "b1"); err != nil {
		t.Fatal(err)
	}
	if len(ev.receipts) != 1 || ev.receipts[0].Kind != receipts.Delivered || ev.receipts[0].Sender != "ann" || ev.receipts[0].ToCount != 20 {
		t.Fatalf("ack receipts %+v", ev.receipts)
	}
	// Coalesced, the large send's receipt is a count and names no one.
	var frames events
	c := receipts.New(frames.Publish, func(context.Context, string, string) (int, error) { return 1, nil }, 0)
	for _, r := range ev.receipts {
		c.Add(r)
	}
	c.Flush(ctx)
	var f map[string]any
	if len(frames.frames) != 1 {
		t.Fatalf("frames %v", frames.frames)
	}
	if err := json.Unmarshal([]byte(frames.frames[0][len("[ann] receipt "):]), &f); err != nil || f["count"] != 1.0 || f["user"] != nil {
		t.Fatalf("large send's receipt %v (%v)", frames.frames[0], err)
	}
}
