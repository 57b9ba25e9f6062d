package handler

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/courierhq/courier/services/pipeline-worker/internal/classify"
)

// Recover turns a panic in an attempt into a transient
// *classify.PanicError for every message of the run not done, so the retry
// around it tries again (maybe on another pod, after a fix) instead of the
// process ending. It is the handler's one recover: the group commit's own
// goroutine has its own (package batch).
func Recover(log *slog.Logger, next Attempt) Attempt {
	return func(ctx context.Context, run []*Message) (errs []error) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			perr := &classify.PanicError{Value: r, Stack: debug.Stack()}
			log.ErrorContext(ctx, "panic while processing", "panic", fmt.Sprint(r), "stack", string(perr.Stack), "messages", len(run))
			errs = make([]error, len(run))
			for i, m := range run {
				if !m.Done() {
					errs[i] = perr
				}
			}
		}()
		return next(ctx, run)
	}
}
