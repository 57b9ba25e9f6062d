package receiver

import (
	"context"
	"sync"
)

// flow is the worker's flow control: a Pull asks for at most as many
// messages as there are free slots, and no Pull starts while the messages
// in hand hold MaxOutstandingBytes or more. Slots are reserved before the
// Pull, so concurrent pullers never overshoot the message limit together.
type flow struct {
	maxMsgs, maxBytes int

	mu      sync.Mutex
	msgs    int           // messages in hand plus slots reserved by Pulls in progress
	bytes   int           // bytes of the messages in hand
	changed chan struct{} // closed (and replaced) whenever capacity frees up
}

func newFlow(maxMsgs, maxBytes int) *flow {
	return &flow{maxMsgs: maxMsgs, maxBytes: maxBytes, changed: make(chan struct{})}
}

// reserve waits until a slot is free and the bytes in hand are under the
// limit, then reserves up to n slots and returns how many.
func (f *flow) reserve(ctx context.Context, n int) (int, error) {
	for {
		f.mu.Lock()
		free := f.maxMsgs - f.msgs
		if free > 0 && f.bytes < f.maxBytes {
			got := min(n, free)
			f.msgs += got
			f.mu.Unlock()
			return got, nil
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// settle turns a reservation of reserved slots into got messages of size
// bytes, giving back the slots the Pull did not fill.
func (f *flow) settle(reserved, got, bytes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs -= reserved - got
	f.bytes += bytes
	if reserved > got {
		f.wake()
	}
}

// release frees the slot and bytes of one finished message.
func (f *flow) release(bytes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs--
	f.bytes -= bytes
	f.wake()
}

// outstanding returns the messages in hand plus reserved slots.
func (f *flow) outstanding() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msgs
}

func (f *flow) wake() {
	close(f.changed)
	f.changed = make(chan struct{})
}
