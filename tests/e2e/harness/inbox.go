package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// InboxEntry is one message of GET /v1/messages.
type InboxEntry struct {
	ID     string `json:"id"`
	From   string `json:"from"`
	Cursor string `json:"cursor"`
}

// Inbox reads the whole inbox of the token's user after cursor, page by page.
func Inbox(ctx context.Context, gatewayURL, token, cursor string) ([]InboxEntry, error) {
	var all []InboxEntry
	for {
		q := url.Values{"limit": {"200"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		status, body, err := Get(ctx, gatewayURL+"/v1/messages?"+q.Encode(), token)
		if err != nil {
			return nil, err
		}
		if status != 200 {
			return nil, fmt.Errorf("GET /v1/messages: %d %s", status, body)
		}
		var page struct {
			Messages   []InboxEntry `json:"messages"`
			NextCursor string       `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("decode inbox page: %v: %s", err, body)
		}
		all = append(all, page.Messages...)
		if len(page.Messages) == 0 {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// Get performs an authenticated GET and returns status and body.
func Get(ctx context.Context, u, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
