package handler

import (
	"context"
	"time"
)

// Timeout bounds each attempt (the wait for the commit, the commit, the
// fan-out publish) by d, so a frozen dependency turns into a transient
// failure instead of a hung message.
func Timeout(d time.Duration, next Attempt) Attempt {
	return func(ctx context.Context, run []*Message) []error {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return next(ctx, run)
	}
}
