package messages

import (
	"context"
	"errors"

	"github.com/courierhq/courier/pkg/clip"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/wire"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// ConversationStore is what conversations need of the store beyond Store
// (inbox.Store has it). An optional ability, checked by type assertion, so
// unit tests' stores without it keep working; the binary's has it.
type ConversationStore interface {
	ListConversations(ctx context.Context, user string, after int64, limit int) (inbox.ConversationPage, error)
	ListConversation(ctx context.Context, user, conv string, r inbox.ConversationPageReq) (inbox.ConversationMessages, error)
	MarkRead(ctx context.Context, user, conv string, seq int64) (inbox.ReadState, error)
	ReadCount(ctx context.Context, st inbox.Stored) (int, error)
	MarkDeliveredBatch(ctx context.Context, acks []inbox.Ack) []error
}

func (s *Service) conversations() (ConversationStore, error) {
	cs, ok := s.store.(ConversationStore)
	if !ok {
		return nil, apierr.New(apierr.Unavailable, "conversations are not available on this gateway")
	}
	return cs, nil
}

func (s *Service) pageLimit(limit int) (int, error) {
	if limit == 0 {
		return s.limits.DefaultPageSize, nil
	}
	if limit < 1 || limit > s.limits.MaxPageSize {
		return 0, apierr.New(apierr.InvalidRequest, "limit: want 1 to %d", s.limits.MaxPageSize)
	}
	return limit, nil
}

func cursorParam(name, c string) (int64, error) {
	seq, err := inbox.DecodeCursor(c)
	if err != nil {
		return 0, apierr.New(apierr.InvalidRequest, "%s: malformed (use a cursor this API returned)", name)
	}
	return seq, nil
}

func conversationParam(id string) error {
	if err := wire.ValidateConversationID(id, false); err != nil {
		return apierr.New(apierr.BadConversation, "conversation: %v", err)
	}
	return nil
}

// ListConversations returns user's conversations, most recent first.
func (s *Service) ListConversations(ctx context.Context, user, cursor string, limit int) (inbox.ConversationPage, error) {
	cs, err := s.conversations()
	if err != nil {
		return inbox.ConversationPage{}, err
	}
	after, err := cursorParam("cursor", cursor)
	if err != nil {
		return inbox.ConversationPage{}, err
	}
	if limit, err = s.pageLimit(limit); err != nil {
		return inbox.ConversationPage{}, err
	}
	p, err := cs.ListConversations(ctx, user, after, limit)
	if err != nil {
		return inbox.ConversationPage{}, storeError(err)
	}
	return p, nil
}

// ListConversation pages conversation conv of user's inbox: the newest
// page (no before, no after), the page before `before`, or after `after`.
// A conversation the user is not in reads as empty (a 404 would tell that
// it exists).
func (s *Service) ListConversation(ctx context.Context, user, conv, before, after string, limit int) (inbox.ConversationMessages, error) {
	cs, err := s.conversations()
	if err != nil {
		return inbox.ConversationMessages{}, err
	}
	if err := conversationParam(conv); err != nil {
		return inbox.ConversationMessages{}, err
	}
	if before != "" && after != "" {
		return inbox.ConversationMessages{}, apierr.New(apierr.InvalidRequest, "before and after: give at most one")
	}
	req := inbox.ConversationPageReq{}
	if req.Before, err = cursorParam("before", before); err != nil {
		return inbox.ConversationMessages{}, err
	}
	if req.After, err = cursorParam("after", after); err != nil {
		return inbox.ConversationMessages{}, err
	}
	if req.Limit, err = s.pageLimit(limit); err != nil {
		return inbox.ConversationMessages{}, err
	}
	p, err := cs.ListConversation(ctx, user, conv, req)
	if err != nil {
		return inbox.ConversationMessages{}, storeError(err)
	}
	return p, nil
}

// MarkRead moves user's read marker of conv forward to cursor.
func (s *Service) MarkRead(ctx context.Context, user, conv, cursor string) (inbox.ReadState, error) {
	cs, err := s.conversations()
	if err != nil {
		return inbox.ReadState{}, err
	}
	if err := conversationParam(conv); err != nil {
		return inbox.ReadState{}, err
	}
	if cursor == "" {
		return inbox.ReadState{}, apierr.New(apierr.InvalidRequest, "cursor: required")
	}
	seq, err := cursorParam("cursor", cursor)
	if err != nil {
		return inbox.ReadState{}, err
	}
	st, err := cs.MarkRead(ctx, user, conv, seq)
	if err != nil {
		return inbox.ReadState{}, storeError(err)
	}
	s.readEvents(ctx, cs, user, conv, st)
	return st, nil
}

// Ack records that user, a recipient, received message id (the REST
// equivalent of a WebSocket ack). Anyone else gets NotFound, as for Get.
func (s *Service) Ack(ctx context.Context, user, id string) error {
	cs, err := s.conversations()
	if err != nil {
		return err
	}
	notFound := apierr.New(apierr.NotFound, "no message %q for this user", clip.Text(id, 64))
	if !wire.ValidMessageID(id) {
		return notFound
	}
	err = cs.MarkDeliveredBatch(ctx, []inbox.Ack{{MessageID: id, User: user}})[0]
	switch {
	case errors.Is(err, inbox.ErrNotFound):
		return notFound
	case err != nil:
		return storeError(err)
	}
	if s.events != nil {
		if st, err := s.store.Get(ctx, id); err == nil {
			s.ackEvents(user, st)
		}
	}
	return nil
}

// readCount is how many recipients read st (0 when the store cannot say).
func (s *Service) readCount(ctx context.Context, st inbox.Stored) (int, error) {
	cs, ok := s.store.(ConversationStore)
	if !ok {
		return 0, nil
	}
	return cs.ReadCount(ctx, st)
}
