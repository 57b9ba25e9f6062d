package messages

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// An Idempotency-Key names one message for good: its id is derived from the
// sender and the key, and the worker stores an id once. A reuse with other
// content would be accepted and silently dropped, so Send refuses it with
// IdempotencyKeyReused. It knows the first content from two places: what
// this gateway published recently (recentKeys, covering the moment before
// the worker stores it), and the stored message (read from Firestore only
// for keyed sends it does not remember). A reuse on another gateway pod
// before the first is stored, or while Firestore cannot be read, is not
// caught: the first content stored wins, as before.

// keyCheckTimeout bounds the read of the stored message; past it the send
// goes ahead unchecked rather than failing on a dependency it does not need.
const keyCheckTimeout = 2 * time.Second

// recentKeysSize bounds the ids this gateway remembers having published.
const recentKeysSize = 10_000

// checkKeyReuse refuses env when its id was published or stored with other
// content.
func (s *Service) checkKeyReuse(ctx context.Context, env *courierv1.Envelope) error {
	fp := fingerprint(env.GetRecipients(), env.GetPayload(), env.GetContentType())
	if prev, ok := s.recent.get(env.GetMessageId()); ok {
		if prev != fp {
			return keyReused(env)
		}
		return nil
	}
	if s.store == nil { // a send-only Service (tests)
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, keyCheckTimeout)
	defer cancel()
	st, err := s.store.Get(rctx, env.GetMessageId())
	switch {
	case errors.Is(err, inbox.ErrNotFound):
		return nil
	case err != nil:
		trace.SpanFromContext(ctx).AddEvent("idempotency key not checked: " + err.Error())
		return nil
	}
	m := st.Message
	if fingerprint(m.GetTo(), m.GetPayload(), m.GetContentType()) != fp {
		return keyReused(env)
	}
	return nil
}

func keyReused(env *courierv1.Envelope) error {
	return apierr.New(apierr.IdempotencyKeyReused,
		"Idempotency-Key already used by this sender for a message with other content (id %s); use a new key for new content",
		env.GetMessageId())
}

// fingerprint identifies a message's content: its recipients in order, its
// content type and its (compacted) payload.
func fingerprint(to []string, payload []byte, contentType string) [sha256.Size]byte {
	var b bytes.Buffer
	for _, r := range to {
		b.WriteString(r)
		b.WriteByte(0) // user ids never contain NUL
	}
	b.WriteByte(1)
	b.WriteString(contentType)
	b.WriteByte(0)
	b.Write(payload)
	return sha256.Sum256(b.Bytes())
}

// recentKeys remembers the content of the last keyed sends this gateway
// published, least recently used out first.
type recentKeys struct {
	mu  sync.Mutex
	max int
	ids map[string]*list.Element // of recentKey
	lru list.List
}

type recentKey struct {
	id string
	fp [sha256.Size]byte
}

func newRecentKeys(n int) *recentKeys {
	return &recentKeys{max: n, ids: make(map[string]*list.Element)}
}

func (r *recentKeys) get(id string) ([sha256.Size]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.ids[id]; e != nil {
		r.lru.MoveToFront(e)
		return e.Value.(recentKey).fp, true
	}
	return [sha256.Size]byte{}, false
}

func (r *recentKeys) put(id string, fp [sha256.Size]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.ids[id]; e != nil {
		r.lru.MoveToFront(e)
		return // the first content stays: it is the one that counts
	}
	if r.lru.Len() >= r.max {
		old := r.lru.Remove(r.lru.Back()).(recentKey)
		delete(r.ids, old.id)
	}
	r.ids[id] = r.lru.PushFront(recentKey{id, fp})
}
