// Package receipts coalesces delivered and read receipts for the senders
// of messages and publishes them as Ephemeral `receipt` frames (contract
// 2122): `{"type":"receipt","kind","conversation","message_id","user"}`,
// meaning user has delivered/read every message of the conversation up to
// and including message_id; for a send over the recipient-list bound
// (to_count > inbox.MaxListedRecipients) `{…,"count":n}` instead, never a
// user id.
//
// Receipts are coalesced per interval (at most one second): many acks or
// marker moves of one reader in one conversation become one frame naming
// the furthest message ("up to"), and every ack of a large send within the
// interval becomes one count, read from the store at flush time. At most
// once, like every ephemeral event: a lost receipt is corrected by GET
// /v1/messages/{id}'s counts.
package receipts

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
)

// Kinds of receipt.
const (
	Delivered = "delivered"
	Read      = "read"
)

// Receipt is one reader's delivered or read mark of one message.
type Receipt struct {
	Kind         string // Delivered or Read
	Sender       string // whose sessions get it
	Conversation string
	MessageID    string
	Reader       string
	// ReaderSeq is the message's position in the reader's inbox: it orders
	// one reader's receipts ("up to" the furthest).
	ReaderSeq int64
	// ToCount is the message's number of recipients: over
	// inbox.MaxListedRecipients the receipt is a count, never a user.
	ToCount int
}

// PublishFunc hands a frame for users to the ephemeral publisher
// (ephemeral.Publisher.Publish).
type PublishFunc func(ctx context.Context, users []string, kind string, frame []byte) bool

// CountFunc returns how many recipients delivered (or read) message id,
// for count receipts.
type CountFunc func(ctx context.Context, kind, messageID string) (int, error)

type userKey struct{ kind, sender, conv, reader string }
type countKey struct{ kind, sender, conv, id string }

// Coalescer gathers receipts and publishes them every interval.
type Coalescer struct {
	publish  PublishFunc
	count    CountFunc
	interval time.Duration

	mu     sync.Mutex
	users  map[userKey]Receipt
	counts map[countKey]struct{}
}

// New returns a Coalescer; Run publishes what it gathers.
func New(publish PublishFunc, count CountFunc, interval time.Duration) *Coalescer {
	if interval <= 0 || interval > time.Second {
		interval = time.Second
	}
	return &Coalescer{publish: publish, count: count, interval: interval, users: map[userKey]Receipt{}, counts: map[countKey]struct{}{}}
}

// Add gathers r; it never blocks on I/O.
func (c *Coalescer) Add(r Receipt) {
	if r.Sender == "" || r.Sender == r.Reader || r.MessageID == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.ToCount > inbox.MaxListedRecipients {
		c.counts[countKey{r.Kind, r.Sender, r.Conversation, r.MessageID}] = struct{}{}
		return
	}
	k := userKey{r.Kind, r.Sender, r.Conversation, r.Reader}
	if old, ok := c.users[k]; !ok || r.ReaderSeq > old.ReaderSeq {
		c.users[k] = r
	}
}

// Run flushes every interval until ctx ends, then once more.
func (c *Coalescer) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.Flush(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			c.Flush(ctx)
		}
	}
}

type frame struct {
	Type         string `json:"type"`
	Kind         string `json:"kind"`
	Conversation string `json:"conversation"`
	MessageID    string `json:"message_id"`
	User         string `json:"user,omitempty"`
	Count        *int   `json:"count,omitempty"`
}

// Flush publishes what was gathered.
func (c *Coalescer) Flush(ctx context.Context) {
	c.mu.Lock()
	users, counts := c.users, c.counts
	c.users, c.counts = map[userKey]Receipt{}, map[countKey]struct{}{}
	c.mu.Unlock()
	for _, r := range users {
		b, _ := json.Marshal(frame{Type: "receipt", Kind: r.Kind, Conversation: r.Conversation, MessageID: r.MessageID, User: r.Reader})
		c.publish(ctx, []string{r.Sender}, "receipt", b)
	}
	for k := range counts {
		n, err := c.count(ctx, k.kind, k.id)
		if err != nil {
			continue // at most once; the counts on GET stay right
		}
		b, _ := json.Marshal(frame{Type: "receipt", Kind: k.kind, Conversation: k.conv, MessageID: k.id, Count: &n})
		c.publish(ctx, []string{k.sender}, "receipt", b)
	}
}
