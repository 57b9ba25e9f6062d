package inbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Committer stores batches of messages, each batch in one atomic Firestore
// commit: every new message document and every inbox entry, each created
// with the precondition that it does not exist yet. Before it, at most one
// round of concurrent reads fetches what it does not know: the heads of
// recipients missing from its cache and, then, whether the messages already
// exist. With a warm cache a batch costs one round trip.
//
// It needs no read-write transaction and takes no lock (see the package
// comment): positions come from heads that are known to exist, so a commit
// can only fail on a position someone else took, never leave a gap. On such
// a conflict (or a message already stored) it reads the batch's heads and
// messages again and commits the rest; a message found stored leaves the
// batch with created=false and the positions of its first commit.
//
// Concurrent Commit calls are safe: they contend like commits of separate
// processes. The pipeline-worker commits one batch at a time, which avoids
// the conflicts between its own batches.
type Committer struct {
	s         *Store
	heads     *headCache
	summaries summaryWriter
	roundTrip func(op string)
	maxRounds int
}

// CommitterOptions tune a Committer.
type CommitterOptions struct {
	// HeadCacheSize bounds the users whose inbox head is remembered between
	// batches (least recently used forgotten first); 0 reads every head.
	HeadCacheSize int
	// RoundTrip, when set, is called once per Firestore request the
	// committer makes (OpCommit, OpGetMessages, OpReadHead), for metrics.
	RoundTrip func(op string)
}

// Request kinds reported to CommitterOptions.RoundTrip.
const (
	OpCommit      = "commit"       // the batch's write
	OpGetMessages = "get_messages" // one batched read of the batch's message documents
	OpReadHead    = "read_head"    // one user's inbox head query
)

// maxConcurrentReads bounds the head queries of one batch in flight at
// once: a 100-recipient message with no cached head reads them all in one
// round.
const maxConcurrentReads = 128

// NewCommitter returns a Committer on s.
func (s *Store) NewCommitter(o CommitterOptions) *Committer {
	return &Committer{s: s, heads: newHeadCache(o.HeadCacheSize), roundTrip: o.RoundTrip, maxRounds: s.maxAttempts}
}

// Result is the outcome of one envelope of a batch.
type Result struct {
	Stored Stored
	// Created is false when the message was stored before (a redelivery,
	// a replay, a repeat within the batch): nothing was written for it and
	// Stored holds its first commit.
	Created bool
	// Err is set when the message is not stored. A message Firestore
	// refuses for its content (InvalidArgument, e.g. a document over
	// 1 MiB) gets that error alone; any other failure stops the batch
	// there, and it and every later message of the batch get it.
	Err error
}

// ErrNotAttempted wraps the failure that stopped a batch before a message
// was written; it is transient exactly when that failure is.
var ErrNotAttempted = errors.New("not attempted after an earlier failure in its batch")

// Commit stores envs in order: each recipient's messages of the batch get
// consecutive positions in the order of envs. The results are in the order
// of envs. A message id that appears twice is stored once; the second gets
// created=false.
func (c *Committer) Commit(ctx context.Context, envs []*courierv1.Envelope) []Result {
	res := make([]Result, len(envs))
	first := make(map[string]int, len(envs))
	unique := make([]int, 0, len(envs))
	var repeats [][2]int // index, index of its first occurrence
	for i, env := range envs {
		if j, ok := first[env.MessageId]; ok {
			repeats = append(repeats, [2]int{i, j})
			continue
		}
		first[env.MessageId] = i
		unique = append(unique, i)
	}
	c.commit(ctx, envs, unique, res)
	for _, r := range repeats {
		res[r[0]] = res[r[1]]
		res[r[0]].Created = false
	}
	return res
}

// commit stores envs[idx...] in order and fills their results. It returns
// the failure that stopped it (already recorded on every message it did not
// store), or nil.
func (c *Committer) commit(ctx context.Context, envs []*courierv1.Envelope, idx []int, res []Result) error {
	pending := idx
	heads := map[string]int64{}
	for _, i := range pending {
		for _, u := range InboxUsers(envs[i]) {
			if h, ok := c.heads.get(u); ok {
				heads[u] = h
			}
		}
	}
	// The first round checks for stored messages only when it reads
	// anyway: with every head cached, a stored message just fails the
	// commit's precondition, which is rare (redeliveries) and costs one
	// more round then.
	checkStored := false
	for round := 1; ; round++ {
		need := missingHeads(envs, pending, heads)
		if checkStored || len(need) > 0 {
			if err := c.read(ctx, envs, pending, checkStored || round == 1, need, heads, res); err != nil {
				return failAll(envs, pending, res, err)
			}
			pending = unsettled(pending, res)
			if len(pending) == 0 {
				return nil
			}
		}
		batch, docs, next, marked := c.build(envs, pending, heads)
		c.count(OpCommit)
		_, err := batch.Commit(ctx)
		if err != nil {
			c.summaries.forget(marked)
		}
		if err == nil {
			for u, h := range next {
				c.heads.set(u, h)
			}
			for _, i := range pending {
				res[i] = Result{Stored: storedFrom(envs[i].MessageId, docs[i]), Created: true}
			}
			return nil
		}
		// Whatever happened, the cached heads of these users may be stale
		// now (a timed-out commit may still have been applied): forget
		// them rather than advance them.
		for _, i := range pending {
			for _, u := range InboxUsers(envs[i]) {
				c.heads.drop(u)
			}
		}
		clear(heads)
		switch code := status.Code(err); {
		case code == codes.AlreadyExists && round < c.maxRounds:
			// A position was taken concurrently, or a message is stored
			// already: read both again.
			checkStored = true
		case code == codes.AlreadyExists:
			return failAll(envs, pending, res, status.Errorf(codes.Aborted,
				"commit batch of %d messages: inbox positions taken concurrently %d times: %v", len(pending), round, err))
		case rejected(err) && len(pending) > 1:
			// Firestore refused the request for its content: find the
			// message(s) at fault by halves, committing the rest in order.
			half := len(pending) / 2
			if err := c.commit(ctx, envs, pending[:half], res); err != nil {
				return failAll(envs, pending[half:], res, fmt.Errorf("%w: %w", ErrNotAttempted, err))
			}
			return c.commit(ctx, envs, pending[half:], res)
		case rejected(err):
			i := pending[0]
			res[i] = Result{Err: fmt.Errorf("commit message %s: %w", envs[i].MessageId, err)}
			return nil
		default:
			return failAll(envs, pending, res, fmt.Errorf("commit batch of %d messages: %w", len(pending), err))
		}
	}
}

// rejected reports whether Firestore refused a request for what it holds,
// so that the same request can never succeed.
func rejected(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.OutOfRange:
		return true
	}
	return false
}

func missingHeads(envs []*courierv1.Envelope, pending []int, heads map[string]int64) []string {
	var need []string
	seen := map[string]bool{}
	for _, i := range pending {
		for _, u := range InboxUsers(envs[i]) {
			if _, ok := heads[u]; !ok && !seen[u] {
				seen[u] = true
				need = append(need, u)
			}
		}
	}
	return need
}

func unsettled(pending []int, res []Result) []int {
	out := pending[:0:0]
	for _, i := range pending {
		if res[i].Stored.Message == nil && res[i].Err == nil {
			out = append(out, i)
		}
	}
	return out
}

func failAll(envs []*courierv1.Envelope, idx []int, res []Result, err error) error {
	for _, i := range idx {
		if res[i].Stored.Message == nil && res[i].Err == nil {
			res[i] = Result{Err: err}
		}
	}
	return err
}

// read fetches, concurrently, the heads of users into heads (and the
// cache) and, with messages, the pending messages: each one found stored is
// settled in res with created=false.
func (c *Committer) read(ctx context.Context, envs []*courierv1.Envelope, pending []int, messages bool, users []string, heads map[string]int64, res []Result) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel()
		}
	}
	getMessages := func() {
		refs := make([]*firestore.DocumentRef, len(pending))
		for k, i := range pending {
			refs[k] = c.s.fs.Collection(MessagesCollection).Doc(envs[i].MessageId)
		}
		c.count(OpGetMessages)
		snaps, err := c.s.fs.GetAll(ctx, refs)
		if err != nil {
			fail(fmt.Errorf("read %d messages: %w", len(refs), err))
			return
		}
		for k, snap := range snaps {
			if !snap.Exists() {
				continue
			}
			st, err := decodeStored(snap)
			if err != nil {
				fail(err)
				return
			}
			res[pending[k]] = Result{Stored: st}
		}
	}
	if messages {
		wg.Go(getMessages)
	}
	sem := make(chan struct{}, maxConcurrentReads)
	for _, u := range users {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c.count(OpReadHead)
			h, err := c.s.Head(ctx, u)
			if err != nil {
				fail(err)
				return
			}
			c.heads.set(u, h)
			mu.Lock()
			heads[u] = h
			mu.Unlock()
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// build prepares the commit of pending at the positions after heads. It
// returns the write batch, the message documents by index, and each
// recipient's head after the commit.
//
// A plain commit outside a transaction is atomic too, and costs one
// request; RunTransaction would add a BeginTransaction round trip (and a
// Rollback on failure) for no benefit, since nothing is read inside it.
// That is why this uses the client's WriteBatch, deprecated in favour of
// transactions and BulkWriter (which is not atomic).
func (c *Committer) build(envs []*courierv1.Envelope, pending []int, heads map[string]int64) (*firestore.WriteBatch, map[int]messageDoc, map[string]int64, [][2]string) {
	now := c.s.now().UTC().Truncate(time.Microsecond)
	expireAt := c.s.expireAt(now)
	next := make(map[string]int64, len(heads))
	batch := c.s.fs.Batch() //nolint:staticcheck // see above
	docs := make(map[int]messageDoc, len(pending))
	last := map[[2]string]int64{} // (user, conversation) → newest position in the batch
	for _, i := range pending {
		env := envs[i]
		doc := newMessageDoc(env, now)
		// The sender's copy is created in the same commit as the message
		// document, so a redelivery, which finds the message stored, can
		// never add a second one.
		for _, uid := range InboxUsers(env) {
			seq, ok := next[uid]
			if !ok {
				seq = heads[uid]
			}
			seq++
			next[uid] = seq
			outgoing := uid == env.Sender && !slices.Contains(env.Recipients, uid)
			if outgoing {
				doc.SenderSeq = seq
			} else {
				doc.Seqs[uid] = seq
			}
			batch.Create(c.s.entryRef(uid, seq), newEntryDoc(env.MessageId, seq, doc, outgoing, expireAt))
		}
		batch.Create(c.s.fs.Collection(MessagesCollection).Doc(env.MessageId), doc)
		docs[i] = doc
		for _, uid := range InboxUsers(env) {
			k := [2]string{uid, doc.ConversationID}
			if seq := next[uid]; seq > last[k] {
				last[k] = seq
			}
		}
	}
	// Conversation summaries: one write per (user, conversation) of the
	// batch at most, and none when this process wrote it less than
	// SummaryInterval ago (ConversationsCollection says why).
	var marked [][2]string
	for k, seq := range last {
		if !c.summaries.due(k[0], k[1], now) {
			continue
		}
		marked = append(marked, k)
		batch.Set(c.s.summaryRef(k[0], k[1]), map[string]any{
			"conversation_id": k[1], "last_seq": seq, "updated_at": now,
		}, firestore.MergeAll)
	}
	return batch, docs, next, marked
}

func (c *Committer) count(op string) {
	if c.roundTrip != nil {
		c.roundTrip(op)
	}
}

// docOverhead is a generous allowance, per document in a commit request,
// for its name (projects/…/documents/users/{uid}/inbox/{seq}), field names,
// timestamps, numbers and the precondition.
const docOverhead = 320

// WriteSize estimates what committing env adds to a commit: writes (one
// inbox entry per recipient plus the message) and request bytes. Callers
// bound batches by both: Firestore refuses requests over 10 MiB (the
// emulator over 4 MiB, see docs/emulators.md).
func WriteSize(env *courierv1.Envelope) (writes, bytes int) {
	common := len(env.Payload) + len(env.ContentType) + len(env.Sender) + len(env.MessageId) + docOverhead
	list := 0
	for _, u := range env.Recipients {
		list += len(u) + 16 // in `to`, and as a key of `seqs` with its number
	}
	listed := 0
	if len(env.Recipients) <= MaxListedRecipients {
		listed = list
	}
	entry := 0
	users := InboxUsers(env)
	for _, u := range users {
		entry += common + len(u) + listed + len(env.ConversationId) + 34
	}
	return len(users) + 1, entry + common + 2*list + len(env.IdempotencyKey)
}
