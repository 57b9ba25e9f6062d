package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
	"github.com/courierhq/courier/services/api-gateway/internal/presence"
)

// Presence answers who is online and who may see whom (presence.Source).
type Presence = presence.Source

// PresenceResponse is the body of GET /v1/presence.
type PresenceResponse struct {
	Presence []presence.Item `json:"presence"`
}

// presence is GET /v1/presence?users=a,b (package presence has the rules).
func (s *server) presence(c echo.Context) error {
	raw := c.QueryParam("users")
	if raw == "" {
		return apierr.New(apierr.InvalidRequest, "users: give a comma-separated list of user ids")
	}
	users := strings.Split(raw, ",")
	items, err := presence.Lookup(c.Request().Context(), s.cfg.Presence, userOf(c).UserID, users)
	if m := s.cfg.Metrics; m != nil {
		var ae *apierr.Error
		switch {
		case err == nil:
			m.PresenceReads.WithLabelValues("ok").Inc()
			m.PresenceUsers.Add(float64(len(items)))
		case errors.As(err, &ae) && ae.Code == apierr.Unavailable:
			m.PresenceReads.WithLabelValues("error").Inc()
		}
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, PresenceResponse{Presence: items})
}
