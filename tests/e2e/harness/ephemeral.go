package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// Raw returns every frame of type typ received so far, as JSON objects.
func (c *WSClient) Raw(typ string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for i, f := range c.frames {
		if f.Type != typ {
			continue
		}
		var m map[string]any
		if json.Unmarshal(c.raw[i], &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// WaitFrames waits until at least n frames of type typ arrived.
func (c *WSClient) WaitFrames(typ string, n int, d time.Duration) ([]map[string]any, error) {
	deadline := time.Now().Add(d)
	for {
		got := c.Raw(typ)
		if len(got) >= n {
			return got, nil
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("got %d of %d %q frames within %s", len(got), n, typ, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Write sends one client frame (JSON text).
func (c *WSClient) Write(ctx context.Context, frame string) error {
	return c.Conn.Write(ctx, websocket.MessageText, []byte(frame))
}

// PostJSON posts body to gatewayURL+path as the holder of token and returns
// the status and the body.
func PostJSON(ctx context.Context, gatewayURL, path, token, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
