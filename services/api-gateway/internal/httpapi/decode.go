package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/courierhq/courier/pkg/clip"
	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
)

// DecodeSendBody strictly decodes a POST /v1/messages body: one JSON object
// with exactly the members "to" (array of strings, required), "payload"
// (any JSON value, required), "content_type" (string, optional) and
// "conversation_id" (string, optional). Member
// names match exactly (encoding/json alone would accept "TO"), unknown or
// repeated members and anything after the object are errors. Semantic
// checks (recipient ids, sizes) are the core's.
func DecodeSendBody(body []byte) (messages.SendRequest, error) {
	var req messages.SendRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return req, syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return req, apierr.New(apierr.InvalidRequest, "body: want a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return req, syntaxError(err)
		}
		name, _ := tok.(string) // object keys are always strings
		if seen[name] {
			return req, apierr.New(apierr.InvalidRequest, "body: member %q appears twice", clip.Text(name, 40))
		}
		seen[name] = true
		switch name {
		case "to":
			var to []string
			if err := dec.Decode(&to); err != nil {
				return req, memberError("to", "an array of user id strings", err)
			}
			req.To = to
		case "payload":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return req, memberError("payload", "a JSON value", err)
			}
			req.Payload = raw
		case "content_type":
			var ct string
			if err := dec.Decode(&ct); err != nil {
				return req, memberError("content_type", "a string", err)
			}
			req.ContentType = ct
		case "conversation_id":
			var id string
			if err := dec.Decode(&id); err != nil {
				return req, memberError("conversation_id", "a string", err)
			}
			req.ConversationID = id
		default:
			return req, apierr.New(apierr.InvalidRequest, "body: unknown member %q (want to, payload, content_type, conversation_id)", clip.Text(name, 40))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return req, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, apierr.New(apierr.InvalidRequest, "body: unexpected data after the JSON object")
	}
	if !seen["to"] {
		return req, apierr.New(apierr.InvalidRequest, "to: required")
	}
	if !seen["payload"] {
		return req, apierr.New(apierr.InvalidRequest, "payload: required")
	}
	return req, nil
}

func syntaxError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return apierr.Wrap(apierr.InvalidRequest, err, "body: empty or truncated JSON")
	}
	return apierr.Wrap(apierr.InvalidRequest, err, "body: malformed JSON")
}

func memberError(name, want string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
		return syntaxError(err)
	}
	return apierr.Wrap(apierr.InvalidRequest, err, name+": want "+want)
}

// CheckJSONContentType accepts "application/json" with an optional UTF-8
// charset; anything else (or nothing) is UnsupportedMediaType.
func CheckJSONContentType(v string) error {
	if v == "" {
		return apierr.New(apierr.UnsupportedMediaType, "Content-Type: application/json is required")
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != "application/json" {
		return apierr.New(apierr.UnsupportedMediaType, "Content-Type: want application/json, got %q", clip.Text(v, 64))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return apierr.New(apierr.UnsupportedMediaType, "Content-Type: only the utf-8 charset is accepted")
	}
	return nil
}

// IdempotencyKey returns the request's Idempotency-Key, "" when absent. A
// header that is present but empty, repeated, or not 1..128 printable ASCII
// characters is InvalidRequest.
func IdempotencyKey(h http.Header) (string, error) {
	vs, ok := h[http.CanonicalHeaderKey("Idempotency-Key")]
	if !ok {
		return "", nil
	}
	if len(vs) != 1 {
		return "", apierr.New(apierr.InvalidRequest, "Idempotency-Key: give it once")
	}
	return messages.ParseIdempotencyKey(vs[0])
}
