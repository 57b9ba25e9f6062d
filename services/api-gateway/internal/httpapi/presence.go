package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/online"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// MaxPresenceUsers bounds GET /v1/presence?users=.
const MaxPresenceUsers = 100

// Presence answers who is online (online.Reader) and who may see whom
// (users who share a conversation: peers.Directory).
type Presence interface {
	States(ctx context.Context, users []string) (map[string]online.State, error)
	Shares(ctx context.Context, user string, others []string) (map[string]bool, error)
}

// PresenceItem is one user's presence in GET /v1/presence.
type PresenceItem struct {
	User     string     `json:"user"`
	Online   bool       `json:"online"`
	LastSeen *time.Time `json:"last_seen"`
}

// PresenceResponse is the body of GET /v1/presence.
type PresenceResponse struct {
	Presence []PresenceItem `json:"presence"`
}

// presence is GET /v1/presence?users=a,b: each user's online state and
// last seen, in the order asked. A user the caller shares no conversation
// with reads offline and never seen, exactly like a user who does not
// exist: the answer reveals nothing about them.
func (s *server) presence(c echo.Context) error {
	raw := c.QueryParam("users")
	if raw == "" {
		return apierr.New(apierr.InvalidRequest, "users: give a comma-separated list of user ids")
	}
	var users []string
	seen := map[string]bool{}
	for _, u := range strings.Split(raw, ",") {
		if err := auth.ValidateUserID(u); err != nil {
			return apierr.New(apierr.InvalidRequest, "users: %v", err)
		}
		if !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	if len(users) > MaxPresenceUsers {
		return apierr.New(apierr.TooManyUsers, "users: at most %d, not %d", MaxPresenceUsers, len(users))
	}
	ctx := c.Request().Context()
	caller := userOf(c).UserID
	allowed, err := s.cfg.Presence.Shares(ctx, caller, users)
	var states map[string]online.State
	if err == nil {
		var visible []string
		for _, u := range users {
			if allowed[u] {
				visible = append(visible, u)
			}
		}
		states, err = s.cfg.Presence.States(ctx, visible)
	}
	if s.cfg.Metrics != nil {
		result := "ok"
		if err != nil {
			result = "error"
		}
		s.cfg.Metrics.PresenceReads.WithLabelValues(result).Inc()
		s.cfg.Metrics.PresenceUsers.Add(float64(len(users)))
	}
	if err != nil {
		return apierr.Wrap(apierr.Unavailable, err, "presence could not be read; retry")
	}
	resp := PresenceResponse{Presence: make([]PresenceItem, 0, len(users))}
	for _, u := range users {
		st := states[u] // zero for a user not visible
		it := PresenceItem{User: u, Online: st.Online}
		if !st.LastSeen.IsZero() {
			t := st.LastSeen.UTC().Truncate(time.Second)
			it.LastSeen = &t
		}
		resp.Presence = append(resp.Presence, it)
	}
	return c.JSON(http.StatusOK, resp)
}
