// Package wsauth reads a WebSocket session's credential from its first
// frame, {"type":"auth","token":"<JWT>"}, so that browsers (which cannot
// set an Authorization header on a WebSocket) need not put the token in
// the URL, where load balancer and ingress access logs would keep it. The
// connection is upgraded first, costs nothing until the frame arrives (no
// session, no store read), and is closed with 1008 and a reason when the
// frame is late, not an auth frame, or carries a refused token.
package wsauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/auth"
)

// Close reasons of a refused handshake (1008); clients match on them.
const (
	ReasonTimeout      = "auth timeout"
	ReasonFrame        = "auth frame expected"
	ReasonInvalidToken = "invalid token"
)

// MaxFrameBytes bounds the auth frame: the longest token auth.Verify
// accepts plus room for the JSON around it.
const MaxFrameBytes = 8192 + 256

// Errors of ParseFrame.
var (
	ErrNotText  = errors.New("the auth frame must be a JSON text frame")
	ErrBadJSON  = errors.New("the auth frame is not a JSON object")
	ErrNotAuth  = errors.New(`the first frame must be {"type":"auth","token":"<JWT>"}`)
	ErrNoToken  = errors.New(`the auth frame has no "token"`)
	ErrTooLarge = fmt.Errorf("the auth frame is larger than %d bytes", MaxFrameBytes)
)

type authFrame struct {
	Type  string `json:"type"`
	Token string `json:"token"`
}

// ParseFrame returns the token of an auth frame, or one of the errors
// above.
func ParseFrame(typ websocket.MessageType, data []byte) (string, error) {
	if typ != websocket.MessageText {
		return "", ErrNotText
	}
	if len(data) > MaxFrameBytes {
		return "", ErrTooLarge
	}
	var f authFrame
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&f); err != nil || d.More() {
		return "", ErrBadJSON
	}
	if f.Type != "auth" {
		return "", ErrNotAuth
	}
	if f.Token == "" {
		return "", ErrNoToken
	}
	return f.Token, nil
}

// Verifier checks a token (auth.Verifier).
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// Refused is why Await closed the connection.
type Refused struct {
	// Reason is the close reason sent (Reason* above), also a metric label.
	Reason string
	Err    error
}

func (r *Refused) Error() string { return r.Reason + ": " + r.Err.Error() }

// Await reads conn's first frame within timeout and verifies its token.
// On success the connection is the caller's to serve; on failure it has
// been closed with 1008 and the returned error is a *Refused.
func Await(conn *websocket.Conn, v Verifier, timeout time.Duration) (auth.Principal, error) {
	conn.SetReadLimit(MaxFrameBytes)
	// A Read whose context ends closes the connection without a close
	// frame; the timer closes it with one, so the client learns why.
	closed := make(chan struct{})
	timer := time.AfterFunc(timeout, func() {
		defer close(closed)
		_ = conn.Close(websocket.StatusPolicyViolation, ReasonTimeout)
	})
	typ, data, err := conn.Read(context.Background())
	if !timer.Stop() {
		<-closed
		return auth.Principal{}, &Refused{Reason: ReasonTimeout, Err: fmt.Errorf("no auth frame within %s", timeout)}
	}
	if err != nil {
		// The client went away, or sent a frame over the limit (the
		// library has closed with 1009).
		_ = conn.CloseNow()
		return auth.Principal{}, &Refused{Reason: ReasonFrame, Err: fmt.Errorf("read the auth frame: %w", err)}
	}
	tok, err := ParseFrame(typ, data)
	if err != nil {
		_ = conn.Close(websocket.StatusPolicyViolation, ReasonFrame)
		return auth.Principal{}, &Refused{Reason: ReasonFrame, Err: err}
	}
	p, err := v.Verify(tok)
	if err != nil {
		_ = conn.Close(websocket.StatusPolicyViolation, ReasonInvalidToken)
		return auth.Principal{}, &Refused{Reason: ReasonInvalidToken, Err: err}
	}
	return p, nil
}
