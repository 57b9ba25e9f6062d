// Package wsclient is the one Go client of ws-edge's /v1/ws used by the
// end-to-end tests (tests/e2e/harness), the benchmark (cmd/courier-bench)
// and `courierctl bench` (cmd/courierctl/internal/loadgen): it dials, with
// batch=1 when asked (newer edges may then put several JSON frames in one
// WebSocket text message, separated by "\n"; older ones ignore it), splits
// every message into frames, reports how the session ended (close code,
// 1006 when the connection dropped without a close frame), and checks each
// session's order (Order: cursors rise strictly, nothing is seen twice).
//
// It decodes as little as it can: at tens of thousands of frames a second
// the client shares the CPUs with the edge it measures. A message frame's
// payload, when written by the benchmark, starts with {"s":<sequence>,
// which is all it needs to find.
package wsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/inbox"
)

// StatusNoClose is reported for a session that ended without a close frame.
const StatusNoClose = 1006

// Kind of a server frame.
type Kind int

const (
	Other   Kind = iota // hello, pong, …
	Message             // a delivered message
	Synced              // the session's starting (or resumed) position
	Error               // an error frame
)

// Frame is one server frame as the benchmark sees it.
type Frame struct {
	Kind Kind
	// Seq is the "s" field of the message's payload (Message only; -1 when
	// the payload is not the benchmark's).
	Seq int64
	// Cursor is the frame's inbox position (Message and Synced; -1 when
	// the frame has none or it does not decode).
	Cursor int64
	// ID is the message id (Message only; "" when absent), what an ack
	// names.
	ID string
	// Raw is the frame; valid only during the callback.
	Raw []byte
}

// Dial opens a batched session (batch=1) for token on edge (host:port),
// resuming after cursor when it is not empty.
func Dial(ctx context.Context, edge, token, cursor string) (*websocket.Conn, error) {
	conn, resp, err := DialWith(ctx, edge, token, cursor, Options{Batch: true})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: status %d: %w", edge, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial %s: %w", edge, err)
	}
	return conn, nil
}

// Options of DialWith.
type Options struct {
	// Batch asks the edge to put several frames in one WebSocket message
	// (batch=1; Read and Split take them apart).
	Batch bool
	// ReadLimit bounds one WebSocket message (default 16 MiB).
	ReadLimit int64
}

// DialWith opens a session for token on edge (host:port), resuming after
// cursor when it is not empty. The response is the edge's answer to the
// upgrade (a refusal's status and body when err is not nil; may be nil).
func DialWith(ctx context.Context, edge, token, cursor string, o Options) (*websocket.Conn, *http.Response, error) {
	q := url.Values{"token": {token}}
	if o.Batch {
		q.Set("batch", "1")
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	conn, resp, err := websocket.Dial(ctx, "ws://"+edge+"/v1/ws?"+q.Encode(), nil)
	if err != nil {
		return nil, resp, err
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 16 << 20
	}
	conn.SetReadLimit(o.ReadLimit)
	return conn, resp, nil
}

// Read reads messages until the connection ends or ctx is done, calling
// onFrame for every frame with the time the message was read. It returns
// the close code the server sent, StatusNoClose when there was none, or 0
// when ctx ended the session.
func Read(ctx context.Context, conn *websocket.Conn, onFrame func(now time.Time, f Frame)) int {
	return ReadWith(ctx, conn, Parse, onFrame)
}

// ReadWith is Read with another server's frame parser (the benchmark's
// peer speaks its own protocol).
func ReadWith(ctx context.Context, conn *websocket.Conn, parse func([]byte) Frame, onFrame func(now time.Time, f Frame)) int {
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			if code := websocket.CloseStatus(err); code != -1 {
				return int(code)
			}
			return StatusNoClose
		}
		now := time.Now()
		Split(b, func(part []byte) { onFrame(now, parse(part)) })
	}
}

// Split calls fn for each non-empty "\n"-separated part of msg.
func Split(msg []byte, fn func(part []byte)) {
	for len(msg) > 0 {
		part := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			part, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		if len(bytes.TrimSpace(part)) > 0 {
			part = bytes.TrimSpace(part)
			fn(part)
		}
	}
}

var (
	seqKey   = []byte(`"payload":{"s":`)
	typeMsg  = []byte(`"type":"message"`)
	typeSync = []byte(`"type":"synced"`)
	typeErr  = []byte(`"type":"error"`)
)

// Parse classifies one frame and, for a message, finds the benchmark's
// sequence number in its payload. The fast path needs the compact JSON
// every Courier edge writes; anything else is decoded properly.
func Parse(part []byte) Frame {
	f := Frame{Kind: kind(part), Seq: -1, Cursor: -1, Raw: part}
	if f.Kind == Message || f.Kind == Synced {
		f.Cursor = cursorOf(part)
	}
	if f.Kind != Message {
		return f
	}
	f.ID = idOf(part)
	if i := bytes.Index(part, seqKey); i >= 0 {
		rest := part[i+len(seqKey):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if n, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
			f.Seq = n
			return f
		}
	}
	var m struct {
		Message struct {
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		} `json:"message"`
	}
	var p struct {
		S *int64 `json:"s"`
	}
	if json.Unmarshal(part, &m) == nil {
		if f.ID == "" {
			f.ID = m.Message.ID
		}
		if json.Unmarshal(m.Message.Payload, &p) == nil && p.S != nil {
			f.Seq = *p.S
		}
	}
	return f
}

var (
	cursorKey = []byte(`"cursor":"`)
	cursorSp  = []byte(`"cursor": "`)
	idKey     = []byte(`"message":{"id":"`)
)

// cursorOf finds the frame's "cursor" (the last one: a payload written by
// the benchmark never holds that key) and decodes it.
func cursorOf(part []byte) int64 {
	i, key := bytes.LastIndex(part, cursorKey), cursorKey
	if i < 0 {
		if i, key = bytes.LastIndex(part, cursorSp), cursorSp; i < 0 {
			return -1
		}
	}
	rest := part[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return -1
	}
	n, err := inbox.DecodeCursor(string(rest[:j]))
	if err != nil {
		return -1
	}
	return n
}

// idOf finds the message id on the fast path (compact JSON, id first, as
// every Courier edge writes it); "" sends Parse to the slow path.
func idOf(part []byte) string {
	i := bytes.Index(part, idKey)
	if i < 0 {
		return ""
	}
	rest := part[i+len(idKey):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}

// Ack acknowledges message id as the JavaScript client does by default
// (clients/js: one {"type":"ack","id"} frame per message received).
func Ack(ctx context.Context, conn *websocket.Conn, id string) error {
	b := make([]byte, 0, len(id)+24)
	b = append(b, `{"type":"ack","id":`...)
	b = strconv.AppendQuote(b, id)
	b = append(b, '}')
	return conn.Write(ctx, websocket.MessageText, b)
}

func kind(part []byte) Kind {
	switch {
	case bytes.Contains(part, typeMsg):
		return Message
	case bytes.Contains(part, typeSync):
		return Synced
	case bytes.Contains(part, typeErr):
		return Error
	}
	var t struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(part, &t) == nil {
		switch t.Type {
		case "message":
			return Message
		case "synced":
			return Synced
		case "error":
			return Error
		}
	}
	return Other
}

// Payload returns the JSON payload the benchmark sends with sequence seq,
// padded with "x" to size bytes in total.
func Payload(seq int64, size int) []byte {
	head := `{"s":` + strconv.FormatInt(seq, 10) + `,"p":"`
	pad := max(size-len(head)-2, 0)
	b := make([]byte, 0, len(head)+pad+2)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte("x"), pad)...)
	return append(b, '"', '}')
}
