package messages

import (
	"context"
	"encoding/json"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/receipts"
)

// Events is where read state and acks become ephemeral frames: the
// caller's own `read` frame at once, receipts to senders coalesced
// (pkg/receipts). Optional: a Service without it sends none.
type Events interface {
	Publish(ctx context.Context, users []string, kind string, frame []byte) bool
	Receipt(r receipts.Receipt)
}

// WithEvents makes the Service publish read frames and receipts; it
// returns s.
func (s *Service) WithEvents(e Events) *Service {
	s.events = e
	return s
}

// maxReadReceiptScan bounds the messages one marker move reports on: the
// newest ones up to the marker, which is what "read up to" needs per sender.
const maxReadReceiptScan = 200

// readEvents publishes the caller's read frame and the read receipts of a
// marker that moved from st.Prev to st.ReadSeq in conv.
func (s *Service) readEvents(ctx context.Context, cs ConversationStore, user, conv string, st inbox.ReadState) {
	if s.events == nil || !st.Moved {
		return
	}
	b, _ := json.Marshal(struct {
		Type         string `json:"type"`
		Conversation string `json:"conversation"`
		Cursor       string `json:"cursor"`
	}{"read", conv, inbox.EncodeCursor(st.ReadSeq)})
	s.events.Publish(ctx, []string{user}, "read", b)
	page, err := cs.ListConversation(ctx, user, conv, inbox.ConversationPageReq{Before: st.ReadSeq + 1, Limit: maxReadReceiptScan})
	if err != nil {
		return // at most once: the read_count on GET stays right
	}
	for _, e := range page.Entries {
		if e.Seq <= st.Prev || e.Message.GetOutgoing() {
			continue
		}
		s.events.Receipt(receipts.Receipt{
			Kind: receipts.Read, Sender: e.Message.GetFrom(), Conversation: conv, MessageID: e.Message.GetId(),
			Reader: user, ReaderSeq: e.Seq, ToCount: int(e.Message.GetToCount()),
		})
	}
}

// ackEvents sends the delivered receipt of user's ack of st.
func (s *Service) ackEvents(user string, st inbox.Stored) {
	if s.events == nil {
		return
	}
	s.events.Receipt(receipts.Receipt{
		Kind: receipts.Delivered, Sender: st.Message.GetFrom(), Conversation: st.Message.GetConversationId(),
		MessageID: st.Message.GetId(), Reader: user, ReaderSeq: st.Seqs[user], ToCount: len(st.Message.GetTo()),
	})
}
