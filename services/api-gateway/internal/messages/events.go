package messages

import (
	"context"

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

// readEvents publishes the caller's read frame and the read receipts of a
// marker that moved (receipts.ReadMoved).
func (s *Service) readEvents(ctx context.Context, cs ConversationStore, user, conv string, st inbox.ReadState) {
	if s.events == nil {
		return
	}
	receipts.ReadMoved(ctx, s.events.Publish, s.events.Receipt, cs, user, conv, st)
}

// ackEvents sends the delivered receipt of user's ack of st.
func (s *Service) ackEvents(user string, st inbox.Stored) {
	if s.events != nil {
		s.events.Receipt(receipts.DeliveredBy(user, st))
	}
}
