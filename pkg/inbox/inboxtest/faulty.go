package inboxtest

import (
	"context"

	"github.com/courierhq/courier/pkg/inbox"
)

// Faulty is a Memory whose reads and acks a test may replace one by one, to
// inject failures or hold a call (a struct of funcs, per house style). Each
// nil func falls through to Memory, so what a test does not replace still
// behaves like the real store.
type Faulty struct {
	*Memory
	GetFunc                func(ctx context.Context, id string) (inbox.Stored, error)
	ListFunc               func(ctx context.Context, user string, after int64, limit int) ([]inbox.Entry, error)
	HeadFunc               func(ctx context.Context, user string) (int64, error)
	DeliveryStateFunc      func(ctx context.Context, id string, listUsers bool) ([]string, int, error)
	MarkDeliveredBatchFunc func(ctx context.Context, acks []inbox.Ack) []error
	// ConversationsErr, when set, fails every conversation read and write
	// (ListConversations, ListConversation, MarkRead, ReadCount).
	ConversationsErr error
}

// NewFaulty returns a Faulty on an empty Memory.
func NewFaulty() *Faulty { return &Faulty{Memory: NewMemory()} }

func (f *Faulty) Get(ctx context.Context, id string) (inbox.Stored, error) {
	if f.GetFunc != nil {
		return f.GetFunc(ctx, id)
	}
	return f.Memory.Get(ctx, id)
}

func (f *Faulty) List(ctx context.Context, user string, after int64, limit int) ([]inbox.Entry, error) {
	if f.ListFunc != nil {
		return f.ListFunc(ctx, user, after, limit)
	}
	return f.Memory.List(ctx, user, after, limit)
}

// ListPage goes through ListFunc when a test set it (a page of at most
// lim.Items entries, with no byte bound), and to Memory otherwise.
func (f *Faulty) ListPage(ctx context.Context, user string, after int64, lim inbox.PageLimit) (inbox.Page, error) {
	if f.ListFunc != nil {
		entries, err := f.ListFunc(ctx, user, after, lim.Items)
		return inbox.Page{Entries: entries, More: len(entries) == lim.Items}, err
	}
	return f.Memory.ListPage(ctx, user, after, lim)
}

func (f *Faulty) Head(ctx context.Context, user string) (int64, error) {
	if f.HeadFunc != nil {
		return f.HeadFunc(ctx, user)
	}
	return f.Memory.Head(ctx, user)
}

func (f *Faulty) DeliveryState(ctx context.Context, id string, listUsers bool) ([]string, int, error) {
	if f.DeliveryStateFunc != nil {
		return f.DeliveryStateFunc(ctx, id, listUsers)
	}
	return f.Memory.DeliveryState(ctx, id, listUsers)
}

func (f *Faulty) MarkDeliveredBatch(ctx context.Context, acks []inbox.Ack) []error {
	if f.MarkDeliveredBatchFunc != nil {
		return f.MarkDeliveredBatchFunc(ctx, acks)
	}
	return f.Memory.MarkDeliveredBatch(ctx, acks)
}

func (f *Faulty) ListConversations(ctx context.Context, user string, after int64, limit int) (inbox.ConversationPage, error) {
	if f.ConversationsErr != nil {
		return inbox.ConversationPage{}, f.ConversationsErr
	}
	return f.Memory.ListConversations(ctx, user, after, limit)
}

func (f *Faulty) ListConversation(ctx context.Context, user, conv string, r inbox.ConversationPageReq) (inbox.ConversationMessages, error) {
	if f.ConversationsErr != nil {
		return inbox.ConversationMessages{}, f.ConversationsErr
	}
	return f.Memory.ListConversation(ctx, user, conv, r)
}

func (f *Faulty) MarkRead(ctx context.Context, user, conv string, seq int64) (inbox.ReadState, error) {
	if f.ConversationsErr != nil {
		return inbox.ReadState{}, f.ConversationsErr
	}
	return f.Memory.MarkRead(ctx, user, conv, seq)
}

func (f *Faulty) ReadCount(ctx context.Context, st inbox.Stored) (int, error) {
	if f.ConversationsErr != nil {
		return 0, f.ConversationsErr
	}
	return f.Memory.ReadCount(ctx, st)
}
