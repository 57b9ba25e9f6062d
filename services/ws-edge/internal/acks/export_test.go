package acks

import "github.com/courierhq/courier/pkg/inbox"

// AddUnchecked queues an ack without Add's id check, as a caller with a
// weaker rule would: the writer must still isolate what the store refuses.
func (w *Writer) AddUnchecked(user, messageID string, reply func(error)) bool {
	select {
	case w.queue <- pending{inbox.Ack{MessageID: messageID, User: user}, reply}:
		return true
	default:
		return false
	}
}
