package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/courierhq/courier/pkg/inbox"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// ConversationItem is one conversation of GET /v1/conversations.
type ConversationItem struct {
	ID          string    `json:"id"`
	LastMessage *ListItem `json:"last_message"`
	LastCursor  string    `json:"last_cursor"`
	UnreadCount int       `json:"unread_count"`
	ReadCursor  string    `json:"read_cursor"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ConversationsResponse is the body of GET /v1/conversations.
type ConversationsResponse struct {
	Conversations []ConversationItem `json:"conversations"`
	NextCursor    string             `json:"next_cursor"`
}

// ConversationPageResponse is the body of GET
// /v1/conversations/{id}/messages: oldest first within the page.
type ConversationPageResponse struct {
	Messages   []ListItem `json:"messages"`
	HasMore    bool       `json:"has_more"`
	PrevCursor string     `json:"prev_cursor"`
	NextCursor string     `json:"next_cursor"`
}

// ReadResponse is the body of POST /v1/conversations/{id}/read.
type ReadResponse struct {
	ConversationID string `json:"conversation_id"`
	ReadCursor     string `json:"read_cursor"`
	UnreadCount    int    `json:"unread_count"`
}

func (s *server) limitParam(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, apierr.New(apierr.InvalidRequest, "limit: want an integer from 1 to %d", s.cfg.Service.Limits().MaxPageSize)
	}
	return n, nil
}

func readCursor(seq int64) string {
	if seq == 0 {
		return ""
	}
	return inbox.EncodeCursor(seq)
}

func (s *server) listConversations(c echo.Context) error {
	limit, err := s.limitParam(c)
	if err != nil {
		return err
	}
	p, err := s.cfg.Service.ListConversations(c.Request().Context(), userOf(c).UserID, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	resp := ConversationsResponse{Conversations: make([]ConversationItem, 0, len(p.Conversations)), NextCursor: p.Next}
	for _, cv := range p.Conversations {
		item := ConversationItem{ID: cv.ID, UnreadCount: cv.UnreadCount, ReadCursor: readCursor(cv.ReadSeq), UpdatedAt: cv.UpdatedAt.UTC()}
		if cv.Last != nil {
			item.LastMessage = &ListItem{WireMessage: inbox.ToWire(cv.Last.Message), Cursor: cv.Last.Cursor()}
			item.LastCursor = cv.Last.Cursor()
		}
		resp.Conversations = append(resp.Conversations, item)
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *server) conversationMessages(c echo.Context) error {
	limit, err := s.limitParam(c)
	if err != nil {
		return err
	}
	p, err := s.cfg.Service.ListConversation(c.Request().Context(), userOf(c).UserID, c.Param("id"),
		c.QueryParam("before"), c.QueryParam("after"), limit)
	if err != nil {
		return err
	}
	resp := ConversationPageResponse{Messages: make([]ListItem, 0, len(p.Entries)), HasMore: p.More}
	for _, e := range p.Entries {
		resp.Messages = append(resp.Messages, ListItem{WireMessage: inbox.ToWire(e.Message), Cursor: e.Cursor()})
	}
	if n := len(p.Entries); n > 0 {
		resp.PrevCursor, resp.NextCursor = p.Entries[0].Cursor(), p.Entries[n-1].Cursor()
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *server) markRead(c echo.Context) error {
	r := c.Request()
	if err := CheckJSONContentType(r.Header.Get(echo.HeaderContentType)); err != nil {
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
	var req struct {
		Cursor string `json:"cursor"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return apierr.New(apierr.InvalidRequest, `body: want {"cursor": "<cursor>"}`)
	}
	conv := c.Param("id")
	st, err := s.cfg.Service.MarkRead(r.Context(), userOf(c).UserID, conv, req.Cursor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ReadResponse{ConversationID: conv, ReadCursor: readCursor(st.ReadSeq), UnreadCount: st.Unread})
}

func (s *server) ack(c echo.Context) error {
	if err := s.cfg.Service.Ack(c.Request().Context(), userOf(c).UserID, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
