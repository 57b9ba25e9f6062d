// Package acks records clients' delivery acknowledgements for the whole
// pod, in batches: a session's reader hands an ack over without waiting,
// and one writer stores everything that accumulated in one Firestore round
// trip pair (inbox.Store.MarkDeliveredBatch). The queue is bounded; when it
// is full the ack is refused at once and the client is told to send it
// again, rather than a reader stalling behind Firestore.
//
// One bad ack never fails its batch-mates: a batch the store refuses as a
// whole for its content (InvalidArgument) is written again in halves until
// the acks it refuses stand alone; each of those is answered ErrRejected, the
// others are written.
package acks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/wire"
)

// ErrRejected answers an ack the store refuses for what it is (a message id
// Firestore cannot name): sending it again will not help.
var ErrRejected = errors.New("ack rejected")

// Store records acks (inbox.Store).
type Store interface {
	MarkDeliveredBatch(ctx context.Context, acks []inbox.Ack) []error
}

// Config bounds the writer.
type Config struct {
	// Queue is how many acks may wait (default 10,000).
	Queue int
	// Batch is the most acks written at once (default 200; Firestore takes
	// up to 500 writes per commit).
	Batch int
	// Timeout bounds one batch's round trips (default 10s).
	Timeout time.Duration
}

type pending struct {
	ack   inbox.Ack
	reply func(error)
}

// Writer batches acks. Add may be called from any goroutine; Run writes.
type Writer struct {
	cfg   Config
	store Store
	log   *slog.Logger
	queue chan pending
}

// New returns a Writer; start Run.
func New(cfg Config, store Store, log *slog.Logger) *Writer {
	if cfg.Queue <= 0 {
		cfg.Queue = 10000
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 200
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Writer{cfg: cfg, store: store, log: log, queue: make(chan pending, cfg.Queue)}
}

// Add queues user's ack of messageID; reply gets the result later, on the
// writer's goroutine (at once, on the caller's, for an id no message can
// have). It reports false, without calling reply, when the queue is full.
func (w *Writer) Add(user, messageID string, reply func(error)) bool {
	if !wire.ValidMessageID(messageID) {
		reply(fmt.Errorf("%w: %q is not a message id", ErrRejected, messageID))
		return true
	}
	select {
	case w.queue <- pending{inbox.Ack{MessageID: messageID, User: user}, reply}:
		return true
	default:
		return false
	}
}

// Run writes batches until ctx ends, then writes what is still queued (a
// graceful stop keeps the acks of the sessions it just closed).
func (w *Writer) Run(ctx context.Context) error {
	batch := make([]pending, 0, w.cfg.Batch)
	for {
		select {
		case p := <-w.queue:
			// Whatever accumulated while the previous batch was written
			// goes with it: no timer, so a lone ack is written at once.
			w.write(w.fill(append(batch[:0], p)))
		case <-ctx.Done():
			for b := w.fill(batch[:0]); len(b) > 0; b = w.fill(batch[:0]) {
				w.write(b)
			}
			return nil
		}
	}
}

// fill adds what is queued to batch, up to the batch size, without waiting.
func (w *Writer) fill(batch []pending) []pending {
	for len(batch) < w.cfg.Batch {
		select {
		case p := <-w.queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

func (w *Writer) write(batch []pending) {
	acks := make([]inbox.Ack, len(batch))
	for i, p := range batch {
		acks[i] = p.ack
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	errs := w.store.MarkDeliveredBatch(ctx, acks)
	cancel()
	var refused []pending
	for i, p := range batch {
		switch {
		case !rejected(errs[i]):
			p.reply(errs[i])
		case len(batch) == 1:
			p.reply(fmt.Errorf("%w: %w", ErrRejected, errs[i]))
		default:
			refused = append(refused, p)
		}
	}
	if len(refused) > 0 {
		// The store refused the batch for something in it: halve until the
		// culprits are alone (log2 of the batch in extra round trips).
		if w.log != nil {
			w.log.Warn("ack batch refused; isolating the bad acks", "acks", len(refused), "err", errs[0])
		}
		half := len(refused) / 2
		w.write(refused[:half])
		w.write(refused[half:])
	}
}

// rejected reports whether the store refused an ack for its content rather
// than for its own state (a transient error) or the ack's (not found).
func rejected(err error) bool {
	return err != nil && status.Code(err) == codes.InvalidArgument
}
