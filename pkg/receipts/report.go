package receipts

import (
	"context"
	"encoding/json"

	"github.com/courierhq/courier/pkg/inbox"
)

// ConversationReader reads a conversation page (inbox.Store has it).
type ConversationReader interface {
	ListConversation(ctx context.Context, user, conv string, r inbox.ConversationPageReq) (inbox.ConversationMessages, error)
}

// maxReadScan bounds the messages one marker move reports on: the newest
// ones up to the marker, which is what "read up to" needs per sender.
const maxReadScan = 200

// ReadMoved reports a read marker that moved from st.Prev to st.ReadSeq:
// the `read` frame to the reader's own sessions at once, and a read
// receipt to add for every message of others it passed (coalesced into
// one per sender by the Coalescer). The gateway (REST) and the edges (the
// WebSocket `read` frame) both call it. At most once: a failure to read
// leaves the counts on GET /v1/messages/{id} right.
func ReadMoved(ctx context.Context, publish PublishFunc, add func(Receipt), cs ConversationReader, user, conv string, st inbox.ReadState) {
	if !st.Moved {
		return
	}
	b, _ := json.Marshal(struct {
		Type         string `json:"type"`
		Conversation string `json:"conversation"`
		Cursor       string `json:"cursor"`
	}{"read", conv, inbox.EncodeCursor(st.ReadSeq)})
	publish(ctx, []string{user}, "read", b)
	page, err := cs.ListConversation(ctx, user, conv, inbox.ConversationPageReq{Before: st.ReadSeq + 1, Limit: maxReadScan})
	if err != nil {
		return
	}
	for _, e := range page.Entries {
		if e.Seq <= st.Prev || e.Message.GetOutgoing() {
			continue
		}
		add(Receipt{
			Kind: Read, Sender: e.Message.GetFrom(), Conversation: conv, MessageID: e.Message.GetId(),
			Reader: user, ReaderSeq: e.Seq, ToCount: int(e.Message.GetToCount()),
		})
	}
}

// DeliveredBy is the delivered receipt of user's ack of st.
func DeliveredBy(user string, st inbox.Stored) Receipt {
	return Receipt{
		Kind: Delivered, Sender: st.Message.GetFrom(), Conversation: st.Message.GetConversationId(),
		MessageID: st.Message.GetId(), Reader: user, ReaderSeq: st.Seqs[user], ToCount: len(st.Message.GetTo()),
	}
}
