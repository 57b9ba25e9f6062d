// Package presence is the gateway's presence lookup, shared by REST (GET
// /v1/presence) and gRPC (GetPresence): at most MaxUsers valid user ids;
// each user's online state and last seen (pkg/online), but only for users
// the caller shares a conversation with (pkg/peers) — anyone else reads
// offline and never seen, exactly like a user who does not exist.
package presence

import (
	"context"
	"time"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/online"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// MaxUsers bounds one lookup.
const MaxUsers = 100

// Source answers who is online (online.Reader) and who may see whom
// (peers.Directory).
type Source interface {
	States(ctx context.Context, users []string) (map[string]online.State, error)
	Shares(ctx context.Context, user string, others []string) (map[string]bool, error)
}

// Item is one user's presence; LastSeen is nil for never seen.
type Item struct {
	User     string     `json:"user"`
	Online   bool       `json:"online"`
	LastSeen *time.Time `json:"last_seen"`
}

// Lookup answers caller's question about users (distinct, in the order
// asked). Errors are *apierr.Error: invalid_request, too_many_users,
// unavailable.
func Lookup(ctx context.Context, src Source, caller string, users []string) ([]Item, error) {
	if len(users) == 0 {
		return nil, apierr.New(apierr.InvalidRequest, "users: give at least one user id")
	}
	var distinct []string
	seen := map[string]bool{}
	for _, u := range users {
		if err := auth.ValidateUserID(u); err != nil {
			return nil, apierr.New(apierr.InvalidRequest, "users: %v", err)
		}
		if !seen[u] {
			seen[u] = true
			distinct = append(distinct, u)
		}
	}
	if len(distinct) > MaxUsers {
		return nil, apierr.New(apierr.TooManyUsers, "users: at most %d, not %d", MaxUsers, len(distinct))
	}
	allowed, err := src.Shares(ctx, caller, distinct)
	var states map[string]online.State
	if err == nil {
		var visible []string
		for _, u := range distinct {
			if allowed[u] {
				visible = append(visible, u)
			}
		}
		states, err = src.States(ctx, visible)
	}
	if err != nil {
		return nil, apierr.Wrap(apierr.Unavailable, err, "presence could not be read; retry")
	}
	out := make([]Item, 0, len(distinct))
	for _, u := range distinct {
		st := states[u] // zero for a user not visible
		it := Item{User: u, Online: st.Online}
		if !st.LastSeen.IsZero() {
			t := st.LastSeen.UTC().Truncate(time.Second)
			it.LastSeen = &t
		}
		out = append(out, it)
	}
	return out, nil
}
