package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/courierhq/courier/pkg/inbox"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// SendResponse is the 202 body of POST /v1/messages.
type SendResponse struct {
	ID         string    `json:"id"`
	AcceptedAt time.Time `json:"accepted_at"`
}

// ListItem is one inbox entry: the message plus the cursor that resumes
// after it.
type ListItem struct {
	inbox.WireMessage
	Cursor string `json:"cursor"`
}

// ListResponse is the body of GET /v1/messages.
type ListResponse struct {
	Messages   []ListItem `json:"messages"`
	NextCursor string     `json:"next_cursor"`
	// HasMore: more may follow (a page bounded by bytes can hold fewer
	// messages than the limit asked for).
	HasMore bool `json:"has_more"`
}

// GetResponse is the body of GET /v1/messages/{id}.
type GetResponse struct {
	Message inbox.WireMessage `json:"message"`
	State   string            `json:"state"`
	// DeliveredTo is empty for a send whose recipient list is not shown
	// (more than inbox.MaxListedRecipients); DeliveredCount always counts.
	DeliveredTo    []string `json:"delivered_to"`
	DeliveredCount int      `json:"delivered_count"`
	ReadCount      int      `json:"read_count"`
}

func (s *server) send(c echo.Context) error {
	r := c.Request()
	if err := CheckJSONContentType(r.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	key, err := IdempotencyKey(r.Header)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return apierr.Wrap(apierr.InvalidRequest, err, "could not read the request body")
	}
	req, err := DecodeSendBody(body)
	if err != nil {
		return err
	}
	req.IdempotencyKey = key
	acc, err := s.cfg.Service.Send(r.Context(), userOf(c).UserID, req)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/messages/"+acc.ID)
	return c.JSON(http.StatusAccepted, SendResponse{ID: acc.ID, AcceptedAt: acc.AcceptedAt.UTC()})
}

func (s *server) list(c echo.Context) error {
	limit := 0
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return apierr.New(apierr.InvalidRequest, "limit: want an integer from 1 to %d", s.cfg.Service.Limits().MaxPageSize)
		}
		limit = n
	}
	page, err := s.cfg.Service.ListInbox(c.Request().Context(), userOf(c).UserID, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	resp := ListResponse{Messages: make([]ListItem, 0, len(page.Entries)), NextCursor: page.NextCursor, HasMore: page.HasMore}
	for _, e := range page.Entries {
		resp.Messages = append(resp.Messages, ListItem{WireMessage: inbox.ToWire(e.Message), Cursor: e.Cursor()})
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *server) get(c echo.Context) error {
	v, err := s.cfg.Service.Get(c.Request().Context(), userOf(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, GetResponse{Message: inbox.ToWire(v.Message), State: v.State, DeliveredTo: v.DeliveredTo, DeliveredCount: v.DeliveredCount, ReadCount: v.ReadCount})
}
