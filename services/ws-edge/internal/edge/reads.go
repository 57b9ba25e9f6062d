package edge

import (
	"context"
	"errors"
	"time"

	"github.com/courierhq/courier/pkg/ephemeral"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/receipts"
)

// ReadStore is what read frames need of the inbox (inbox.Store has it).
type ReadStore interface {
	MarkRead(ctx context.Context, user, conv string, seq int64) (inbox.ReadState, error)
	receipts.ConversationReader
}

// reads serves sessions' `read` frames off their readers: a bounded number
// at once, each a Firestore transaction, then the `read` frame to the
// user's sessions and read receipts to the senders (pkg/receipts).
type reads struct {
	store    ReadStore
	pub      *ephemeral.Publisher
	receipts *receipts.Coalescer
	slots    chan struct{}
}

// readTimeout bounds one marker move.
const readTimeout = 5 * time.Second

func newReads(store ReadStore, pub *ephemeral.Publisher, c *receipts.Coalescer) *reads {
	return &reads{store: store, pub: pub, receipts: c, slots: make(chan struct{}, 64)}
}

func (r *reads) MarkRead(user, conv string, seq int64, reply func(error)) bool {
	select {
	case r.slots <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-r.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		st, err := r.store.MarkRead(ctx, user, conv, seq)
		if err == nil {
			receipts.ReadMoved(ctx, r.pub.Publish, r.receipts.Add, r.store, user, conv, st)
		}
		reply(err)
	}()
	return true
}

// countReceipt counts a large send's acks or read markers for a count
// receipt.
func countReceipt(ctx context.Context, rs ReadStore, kind, id string) (int, error) {
	g, ok := rs.(interface {
		Get(ctx context.Context, id string) (inbox.Stored, error)
		ReadCount(ctx context.Context, st inbox.Stored) (int, error)
		DeliveryState(ctx context.Context, id string, listUsers bool) ([]string, int, error)
	})
	if !ok {
		return 0, errNoCount
	}
	if kind == receipts.Delivered {
		_, n, err := g.DeliveryState(ctx, id, false)
		return n, err
	}
	st, err := g.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	return g.ReadCount(ctx, st)
}

var errNoCount = errors.New("no count for this receipt")
