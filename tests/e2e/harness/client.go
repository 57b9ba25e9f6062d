package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// SendResult is the gateway's answer to one POST /v1/messages.
type SendResult struct {
	Status int
	ID     string
	Code   string
	Body   string
}

// Send posts a message as the holder of token.
func Send(ctx context.Context, gatewayURL, token string, to []string, payload any, idemKey string) (SendResult, error) {
	body, err := json.Marshal(map[string]any{"to": to, "payload": payload})
	if err != nil {
		return SendResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+"/v1/messages", bytes.NewReader(body))
	if err != nil {
		return SendResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return SendResult{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var parsed struct {
		ID   string `json:"id"`
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &parsed)
	return SendResult{Status: resp.StatusCode, ID: parsed.ID, Code: parsed.Code, Body: string(b)}, nil
}

// Frame is one server frame on a WebSocket.
type Frame struct {
	Type    string `json:"type"`
	Cursor  string `json:"cursor"`
	Code    string `json:"code"`
	Message struct {
		ID      string          `json:"id"`
		From    string          `json:"from"`
		To      []string        `json:"to"`
		Payload json.RawMessage `json:"payload"`
	} `json:"message"`
}

// WSClient is a test WebSocket session that records every frame.
type WSClient struct {
	Addr   string
	Conn   *websocket.Conn
	mu     sync.Mutex
	frames []Frame
	raw    [][]byte // every frame as it came (Raw)
	closed chan struct{}
	err    error
}

// Dial opens a session on edgeAddr, optionally resuming after cursor.
func Dial(ctx context.Context, edgeAddr, token, cursor string) (*WSClient, *http.Response, error) {
	q := url.Values{"token": {token}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	conn, resp, err := websocket.Dial(ctx, "ws://"+edgeAddr+"/v1/ws?"+q.Encode(), nil)
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	c := &WSClient{Addr: edgeAddr, Conn: conn, closed: make(chan struct{})}
	go c.read()
	return c, resp, nil
}

func (c *WSClient) read() {
	defer close(c.closed)
	for {
		_, b, err := c.Conn.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var f Frame
		if json.Unmarshal(b, &f) != nil {
			// Not a message's shape (an error frame's "message" is a
			// string): keep its type, and the frame in raw.
			var typed struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(b, &typed) != nil {
				continue
			}
			f = Frame{Type: typed.Type}
		}
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.raw = append(c.raw, b)
		c.mu.Unlock()
	}
}

// Messages returns the message frames received so far.
func (c *WSClient) Messages() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Frame
	for _, f := range c.frames {
		if f.Type == "message" {
			out = append(out, f)
		}
	}
	return out
}

// LastCursor returns the cursor of the last message or synced frame (where
// a client resumes), "" if none.
func (c *WSClient) LastCursor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.frames) - 1; i >= 0; i-- {
		if f := c.frames[i]; (f.Type == "message" || f.Type == "synced") && f.Cursor != "" {
			return f.Cursor
		}
	}
	return ""
}

// Closed is closed when the session ends; Err then tells why.
func (c *WSClient) Closed() <-chan struct{} { return c.closed }

// Err is the read error that ended the session.
func (c *WSClient) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// CloseStatus is the close code the server sent, or -1.
func (c *WSClient) CloseStatus() websocket.StatusCode { return websocket.CloseStatus(c.Err()) }

// Close ends the session from the client side.
func (c *WSClient) Close() { _ = c.Conn.Close(websocket.StatusNormalClosure, "bye") }

// WaitMessages waits until at least n message frames arrived.
func (c *WSClient) WaitMessages(n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if got := len(c.Messages()); got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("got %d of %d messages within %s", len(c.Messages()), n, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
