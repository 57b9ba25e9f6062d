// Package messages is the gateway's core: send, list an inbox, get one
// message. REST and gRPC are thin adapters over the same Service, so both
// validate, assign ids, authorize and fail the same way. It knows nothing of
// HTTP or gRPC; its dependencies are the two small interfaces below.
package messages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/clip"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// Publisher hands an envelope to the ingress topic and returns once Pub/Sub
// confirmed it (or failed).
type Publisher interface {
	Publish(ctx context.Context, env *courierv1.Envelope) error
}

// Store reads what the pipeline-worker committed (inbox.Store satisfies it).
type Store interface {
	ListPage(ctx context.Context, user string, after int64, lim inbox.PageLimit) (inbox.Page, error)
	Get(ctx context.Context, id string) (inbox.Stored, error)
	DeliveryState(ctx context.Context, id string, listUsers bool) ([]string, int, error)
	Acknowledged(ctx context.Context, id, user string) (bool, error)
}

// Limits bound what one request may ask for.
type Limits struct {
	MaxRecipients   int // recipients per message (default 100)
	MaxPayloadBytes int // compacted JSON payload (default 65536)
	DefaultPageSize int // inbox page when the caller gives no limit (default 50)
	MaxPageSize     int // largest inbox page (default 200)
	// MaxEnvelopeBytes bounds the encoded envelope (default
	// wire.DefaultMaxEnvelopeBytes); keep it at most the worker's
	// WORKER_MAX_ENVELOPE_BYTES, or the worker dead-letters what this
	// accepted.
	MaxEnvelopeBytes int
	// MaxPageBytes bounds an inbox page by size too (default
	// inbox.DefaultPageBytes): a page of 64 KiB payloads holds ~16.
	MaxPageBytes int
}

// withDefaults fills zero limits. The binary never relies on it
// (settings.go sets every limit, TestPackagesDoNotFillIn); it stays because
// tests build cores from partial Limits, where a zero limit would refuse
// every send or page.
func (l Limits) withDefaults() Limits {
	if l.MaxRecipients <= 0 {
		l.MaxRecipients = 100
	}
	if l.MaxPayloadBytes <= 0 {
		l.MaxPayloadBytes = 64 << 10
	}
	if l.MaxPageSize <= 0 {
		l.MaxPageSize = 200
	}
	if l.MaxEnvelopeBytes <= 0 {
		l.MaxEnvelopeBytes = wire.DefaultMaxEnvelopeBytes
	}
	if l.MaxPageBytes <= 0 {
		l.MaxPageBytes = inbox.DefaultPageBytes
	}
	if l.DefaultPageSize <= 0 || l.DefaultPageSize > l.MaxPageSize {
		l.DefaultPageSize = min(50, l.MaxPageSize)
	}
	return l
}

// Budget spends a weighted cost from one key's budget (a
// ratelimit.Limiter): ok false, with when to retry, when it is spent.
type Budget interface {
	AllowN(key string, cost float64) (ok bool, retryAfter time.Duration)
}

// Budgets weight sends by what they cost, beside the transports' limit of
// requests per caller (one token per request, whatever it asks): a send to
// 100 recipients writes 101 inbox documents and delivers 100 frames. A nil
// budget is not checked.
type Budgets struct {
	// StoredKiB is per sender: the KiB its sends make the worker store,
	// StoredKiB(payload, recipients) each.
	StoredKiB Budget
	// Inbound is per recipient: the messages it receives, whoever sends
	// them, so that many senders together cannot flood one inbox.
	Inbound Budget
}

// StoredKiB is what one send costs the StoredKiB budget: its inbox entries
// (one per recipient) and its message document, each the payload plus
// about 256 bytes of ids and fields, in KiB rounded up. A 200-byte
// one-to-one message costs 1.
func StoredKiB(payloadBytes, recipients int) float64 {
	return math.Ceil(float64((payloadBytes+256)*(recipients+1)) / 1024)
}

// DefaultContentType describes a payload when the sender names none.
const DefaultContentType = "application/json"

// Service implements the three operations.
type Service struct {
	pub     Publisher
	store   Store
	limits  Limits
	budgets Budgets
	now     func() time.Time
	recent  *recentKeys // keyed sends published lately (keys.go)
	events  Events      // read frames and receipts (events.go); nil: none
}

// New returns a Service; zero limits take test-safe values (withDefaults).
func New(pub Publisher, store Store, limits Limits) *Service {
	return &Service{pub: pub, store: store, limits: limits.withDefaults(), now: time.Now, recent: newRecentKeys(recentKeysSize)}
}

// WithBudgets makes Send charge b; it returns s.
func (s *Service) WithBudgets(b Budgets) *Service {
	s.budgets = b
	return s
}

// Limits returns the effective limits.
func (s *Service) Limits() Limits { return s.limits }

// SendRequest is one message as a caller submitted it.
type SendRequest struct {
	To             []string
	Payload        []byte // a JSON value
	ContentType    string // optional; DefaultContentType when empty
	IdempotencyKey string // optional; already checked by ParseIdempotencyKey
	// ConversationID is optional: without it the message belongs to the
	// conversation of its member set (wire.DeriveConversationID).
	ConversationID string
}

// Accepted is the answer to a confirmed send.
type Accepted struct {
	ID string
	// AcceptedAt is also the envelope's sent_at.
	AcceptedAt time.Time
}

// Send validates req from sender, gives it its id, and publishes its
// envelope. It returns only after Pub/Sub confirmed the publish; a failure
// is Unavailable, and the caller may retry with the same idempotency key.
// A key reused with other content is IdempotencyKeyReused (keys.go). It
// never writes Firestore: storing is the pipeline-worker's job.
func (s *Service) Send(ctx context.Context, sender string, req SendRequest) (Accepted, error) {
	env, err := s.Envelope(sender, req)
	if err != nil {
		return Accepted{}, err
	}
	trace.SpanFromContext(ctx).SetAttributes(pubsubx.KeyCourierMessageID.String(env.MessageId))
	if env.IdempotencyKey != "" {
		if err := s.checkKeyReuse(ctx, env); err != nil {
			return Accepted{}, err
		}
	}
	if err := s.charge(env); err != nil {
		return Accepted{}, err
	}
	if err := s.pub.Publish(ctx, env); err != nil {
		return Accepted{}, apierr.Wrap(apierr.Unavailable, err,
			"the message could not be queued; retry later (with the same Idempotency-Key to avoid duplicates)")
	}
	if env.IdempotencyKey != "" {
		s.recent.put(env.MessageId, fingerprint(env.Recipients, env.Payload, env.ContentType))
	}
	return Accepted{ID: env.MessageId, AcceptedAt: env.SentAt.AsTime()}, nil
}

// charge spends env's cost from the sender's stored-bytes budget and one
// message from each recipient's inbound budget. A refusal is whole: the
// tokens already taken from other recipients stay spent, which errs
// towards refusing a little early, never towards letting a flood through.
func (s *Service) charge(env *courierv1.Envelope) error {
	if b := s.budgets.StoredKiB; b != nil {
		if ok, retry := b.AllowN(env.Sender, StoredKiB(len(env.Payload), len(env.Recipients))); !ok {
			e := apierr.New(apierr.RateLimited, "your sends store too much per second (payload × recipients); retry later or send to fewer recipients")
			e.RetryAfter = retry
			return e
		}
	}
	if b := s.budgets.Inbound; b != nil {
		for i, r := range env.Recipients {
			if ok, retry := b.AllowN(r, 1); !ok {
				e := apierr.New(apierr.RecipientRateLimited, "to[%d] receives too many messages right now; retry later", i)
				e.RetryAfter = retry
				return e
			}
		}
	}
	return nil
}

// Envelope validates req and builds the envelope Send would publish.
func (s *Service) Envelope(sender string, req SendRequest) (*courierv1.Envelope, error) {
	if err := auth.ValidateUserID(sender); err != nil {
		return nil, apierr.Wrap(apierr.Unauthenticated, err, "the token's subject is not a valid user id")
	}
	if err := s.validateRecipients(req.To); err != nil {
		return nil, err
	}
	payload, err := s.validatePayload(req.Payload)
	if err != nil {
		return nil, err
	}
	ct, err := validateContentType(req.ContentType)
	if err != nil {
		return nil, err
	}
	if req.IdempotencyKey != "" {
		if _, err := ParseIdempotencyKey(req.IdempotencyKey); err != nil {
			return nil, err
		}
	}
	conv := req.ConversationID
	if conv == "" {
		conv = wire.DeriveConversationID(append([]string{sender}, req.To...))
	} else if err := wire.ValidateConversationID(conv, true); err != nil {
		return nil, apierr.New(apierr.BadConversation, "conversation_id: %v", err)
	}
	id := NewID()
	if req.IdempotencyKey != "" {
		id = DeriveID(sender, req.IdempotencyKey)
	}
	env := &courierv1.Envelope{
		MessageId:      id,
		Sender:         sender,
		Recipients:     slices.Clone(req.To),
		Payload:        payload,
		ContentType:    ct,
		SentAt:         timestamppb.New(s.now().UTC().Truncate(time.Microsecond)),
		IdempotencyKey: req.IdempotencyKey,
		ConversationId: conv,
	}
	if err := s.workerAccepts(env); err != nil {
		return nil, err
	}
	return env, nil
}

// workerAccepts applies the worker's own rule (wire.ValidateEnvelope) to
// env, so that what the worker could only dead-letter is refused here, to
// the caller, instead of answered 202: above all a payload that fits its
// own limit but, copied into every recipient's inbox, exceeds one
// Firestore commit.
func (s *Service) workerAccepts(env *courierv1.Envelope) error {
	if n := proto.Size(env); n > s.limits.MaxEnvelopeBytes {
		return apierr.New(apierr.MessageTooLarge, "the message encodes to %d bytes, limit %d (send a smaller payload or fewer recipients)", n, s.limits.MaxEnvelopeBytes)
	}
	err := wire.ValidateEnvelope(env, wire.Limits{MaxPayloadBytes: s.limits.MaxPayloadBytes, MaxRecipients: s.limits.MaxRecipients})
	var ee *wire.EnvelopeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.Reason == wire.ReasonTooLarge:
		return apierr.New(apierr.MessageTooLarge,
			"a payload of %d bytes copied to %d recipients and the sender exceeds %d bytes, what one message may store; send a smaller payload or fewer recipients",
			len(env.Payload), len(env.Recipients), wire.MaxCommitBytes)
	default:
		// The gateway's checks above are meant to be at least as strict as
		// the worker's; a disagreement is refused rather than dead-lettered.
		return apierr.Wrap(apierr.InvalidRequest, err, "the message is not valid: "+err.Error())
	}
}

func (s *Service) validateRecipients(to []string) error {
	switch {
	case len(to) == 0:
		return apierr.New(apierr.InvalidRequest, "to: at least one recipient is required")
	case len(to) > s.limits.MaxRecipients:
		return apierr.New(apierr.InvalidRequest, "to: at most %d recipients are allowed, got %d", s.limits.MaxRecipients, len(to))
	}
	seen := make(map[string]struct{}, len(to))
	for i, uid := range to {
		if err := auth.ValidateUserID(uid); err != nil {
			return apierr.New(apierr.InvalidRequest, "to[%d]: %v", i, err)
		}
		if _, dup := seen[uid]; dup {
			return apierr.New(apierr.InvalidRequest, "to[%d]: duplicate recipient %q", i, uid)
		}
		seen[uid] = struct{}{}
	}
	return nil
}

// validatePayload checks that p is one JSON value other than null and
// returns it compacted (insignificant whitespace removed), which is what is
// stored, delivered and measured against the size limit.
func (s *Service) validatePayload(p []byte) ([]byte, error) {
	if len(bytes.TrimSpace(p)) == 0 {
		return nil, apierr.New(apierr.InvalidRequest, "payload: required")
	}
	var buf bytes.Buffer
	buf.Grow(len(p))
	if err := json.Compact(&buf, p); err != nil || !json.Valid(p) {
		return nil, apierr.New(apierr.InvalidRequest, "payload: not a valid JSON value")
	}
	if buf.String() == "null" {
		return nil, apierr.New(apierr.InvalidRequest, "payload: required (null is not a message)")
	}
	if buf.Len() > s.limits.MaxPayloadBytes {
		return nil, apierr.New(apierr.PayloadTooLarge, "payload: %d bytes exceed the limit of %d", buf.Len(), s.limits.MaxPayloadBytes)
	}
	return buf.Bytes(), nil
}

func validateContentType(ct string) (string, error) {
	if ct == "" {
		return DefaultContentType, nil
	}
	if len(ct) > 255 {
		return "", apierr.New(apierr.InvalidRequest, "content_type: longer than 255 characters")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if typ, sub, ok := strings.Cut(mt, "/"); err != nil || !ok || typ == "" || sub == "" {
		return "", apierr.New(apierr.InvalidRequest, "content_type: not a media type (e.g. application/json)")
	}
	return ct, nil
}

// Page is one page of an inbox.
type Page struct {
	Entries []inbox.Entry
	// NextCursor resumes after the last entry; the cursor given when the page
	// is empty.
	NextCursor string
	// HasMore: the page stopped at its limit (entries or bytes), so more
	// may follow even when it holds fewer entries than asked for.
	HasMore bool
}

// ListInbox returns up to limit entries of user's own inbox after cursor,
// oldest first. limit 0 means the default page size. A cursor is only a
// position and is always read in the caller's own inbox.
func (s *Service) ListInbox(ctx context.Context, user, cursor string, limit int) (Page, error) {
	after, err := inbox.DecodeCursor(cursor)
	if err != nil {
		return Page{}, apierr.New(apierr.InvalidRequest, "cursor: malformed (use a cursor this API returned)")
	}
	if limit == 0 {
		limit = s.limits.DefaultPageSize
	}
	if limit < 1 || limit > s.limits.MaxPageSize {
		return Page{}, apierr.New(apierr.InvalidRequest, "limit: want 1 to %d", s.limits.MaxPageSize)
	}
	got, err := s.store.ListPage(ctx, user, after, inbox.PageLimit{Items: limit, Bytes: s.limits.MaxPageBytes})
	if err != nil {
		return Page{}, storeError(err)
	}
	p := Page{Entries: got.Entries, NextCursor: cursor, HasMore: got.More}
	if n := len(got.Entries); n > 0 {
		p.NextCursor = got.Entries[n-1].Cursor()
	}
	return p, nil
}

// View is one message as its sender or a recipient may see it.
type View struct {
	Message *courierv1.Message
	// State is "stored" or "delivered" (a message the worker has not stored
	// yet is not found: the gateway keeps no record of accepted messages).
	// Delivery state is the sender's to see: a recipient is shown only its
	// own (State, DeliveredTo and DeliveredCount then say whether the caller
	// received it), never whether the others have.
	State string
	// DeliveredTo lists the recipients that received it on a WebSocket,
	// sorted; like the message's own list, only for a send to at most
	// inbox.MaxListedRecipients users (empty otherwise).
	DeliveredTo []string
	// DeliveredCount is how many recipients received it.
	DeliveredCount int
	// ReadCount is how many recipients' read markers passed it (for a
	// recipient: its own, 0 or 1).
	ReadCount int
}

// Get returns message id if user sent or received it. Anything else,
// including a message that exists but is someone else's, is NotFound: the
// answer never reveals that an id exists.
func (s *Service) Get(ctx context.Context, user, id string) (View, error) {
	notFound := apierr.New(apierr.NotFound, "no message %q for this user", clip.Text(id, 64))
	// The worker's own id rule: an id it would refuse (Firestore's reserved
	// __x__ among them) was never stored, and must not reach the store.
	if !wire.ValidMessageID(id) {
		return View{}, notFound
	}
	st, err := s.store.Get(ctx, id)
	if errors.Is(err, inbox.ErrNotFound) {
		return View{}, notFound
	}
	if err != nil {
		return View{}, storeError(err)
	}
	if st.Message.GetFrom() != user && !slices.Contains(st.Message.GetTo(), user) {
		return View{}, notFound
	}
	shown := inbox.Shown(st.Message)
	listed := len(shown.GetTo()) > 0
	if st.Message.GetFrom() != user {
		v, err := s.recipientView(ctx, shown, listed, user)
		if err != nil {
			return View{}, err
		}
		// Only the caller's own read state.
		own := inbox.Stored{Message: st.Message, Seqs: map[string]int64{user: st.Seqs[user]}}
		if v.ReadCount, err = s.readCount(ctx, own); err != nil {
			return View{}, storeError(err)
		}
		return v, nil
	}
	users, count, err := s.store.DeliveryState(ctx, id, listed)
	if err != nil {
		return View{}, storeError(err)
	}
	reads, err := s.readCount(ctx, st)
	if err != nil {
		return View{}, storeError(err)
	}
	v := View{Message: shown, State: "stored", DeliveredTo: []string{}, DeliveredCount: count, ReadCount: reads}
	if count > 0 {
		v.State = "delivered"
	}
	if listed && users != nil {
		v.DeliveredTo = users
	}
	return v, nil
}

// recipientView is message m as its recipient user sees it: its own
// delivery state only.
func (s *Service) recipientView(ctx context.Context, m *courierv1.Message, listed bool, user string) (View, error) {
	v := View{Message: m, State: "stored", DeliveredTo: []string{}}
	acked, err := s.store.Acknowledged(ctx, m.GetId(), user)
	if err != nil {
		return View{}, storeError(err)
	}
	if acked {
		v.State, v.DeliveredCount = "delivered", 1
		if listed {
			v.DeliveredTo = []string{user}
		}
	}
	return v, nil
}

func storeError(err error) error {
	if errors.Is(err, inbox.ErrCursorExpired) {
		return apierr.Wrap(apierr.CursorExpired, err, "the cursor is behind what this deployment retains (INBOX_RETENTION); reload the newest page and continue from there")
	}
	e := apierr.From(err)
	if e.Code == apierr.Internal {
		return apierr.Wrap(apierr.Internal, err, "could not read messages")
	}
	return apierr.Wrap(apierr.Unavailable, err, "messages are unavailable right now; retry later")
}
