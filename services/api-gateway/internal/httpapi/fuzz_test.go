package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/courierhq/courier/pkg/auth"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
	"github.com/courierhq/courier/services/api-gateway/internal/httpapi"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
)

// FuzzDecodeSendBody feeds arbitrary bodies through the strict decoder and
// the core's validation (what POST /v1/messages does before publishing).
// Whatever the input: no panic, every refusal is a client error with a
// code, and every accepted body yields an envelope that honours the
// limits and survives a round trip. Seeds: testdata/fuzz/FuzzDecodeSendBody.
func FuzzDecodeSendBody(f *testing.F) {
	for _, s := range []string{
		okBody,
		`{"to":["bob","carol"],"payload":[1,{"a":null}],"content_type":"application/vnd.x+json"}`,
		`{"to":[],"payload":1}`, `{"to":["bob"],"payload":null}`, `{"to":["bob"]}`, `{"TO":["bob"],"payload":1}`,
		`{"to":["bob"],"to":["x"],"payload":1}`, `{"to":["bob"],"payload":1}{}`, `[]`, `"x"`, ``, `{`, `{"to":["\u0000"],"payload":1}`,
	} {
		f.Add([]byte(s))
	}
	svc := messages.New(nil, nil, messages.Limits{MaxRecipients: 5, MaxPayloadBytes: 256})
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := httpapi.DecodeSendBody(body)
		if err == nil {
			e, verr := svc.Envelope("alice", req)
			if verr == nil {
				if len(e.Recipients) < 1 || len(e.Recipients) > 5 {
					t.Fatalf("accepted %d recipients", len(e.Recipients))
				}
				for _, r := range e.Recipients {
					if auth.ValidateUserID(r) != nil {
						t.Fatalf("accepted recipient %q", r)
					}
				}
				sorted := slices.Clone(e.Recipients)
				slices.Sort(sorted)
				if len(slices.Compact(sorted)) != len(e.Recipients) {
					t.Fatalf("accepted duplicate recipients %v", e.Recipients)
				}
				if !json.Valid(e.Payload) || len(e.Payload) > 256 || string(e.Payload) == "null" {
					t.Fatalf("accepted payload %q", e.Payload)
				}
				var compact bytes.Buffer
				_ = json.Compact(&compact, e.Payload)
				if compact.String() != string(e.Payload) {
					t.Fatalf("payload not compacted: %q", e.Payload)
				}
				// Round trip: re-encoding the accepted request decodes to the same.
				again, err := json.Marshal(map[string]any{"to": req.To, "payload": json.RawMessage(req.Payload), "content_type": req.ContentType})
				if err != nil {
					t.Fatalf("re-encode: %v", err)
				}
				req2, err := httpapi.DecodeSendBody(again)
				if err != nil || !slices.Equal(req2.To, req.To) || req2.ContentType != req.ContentType {
					t.Fatalf("round trip of %q: %v %+v", again, err, req2)
				}
				return
			}
			err = verr
		}
		var ae *apierr.Error
		if !errors.As(err, &ae) || (ae.Code != apierr.InvalidRequest && ae.Code != apierr.PayloadTooLarge) {
			t.Fatalf("refusal is not a client error: %v", err)
		}
		if ae.Detail == "" {
			t.Fatal("refusal without detail")
		}
	})
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// FuzzIdempotencyKey parses arbitrary Idempotency-Key headers: accepted
// keys are 1-128 printable ASCII characters and derive a well-formed id;
// everything else is invalid_request. Seeds: testdata/fuzz/FuzzIdempotencyKey.
func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"k", "order-42", " x ", "", "\x00", "é", "\x7f"} {
		f.Add(s, false)
	}
	f.Add("k", true)
	f.Fuzz(func(t *testing.T, key string, twice bool) {
		h := http.Header{}
		h.Set("Idempotency-Key", key)
		if twice {
			h.Add("Idempotency-Key", key)
		}
		got, err := httpapi.IdempotencyKey(h)
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Code != apierr.InvalidRequest {
				t.Fatalf("refusal is not invalid_request: %v", err)
			}
			return
		}
		if twice || got != key || len(got) < 1 || len(got) > 128 {
			t.Fatalf("accepted %q (twice=%v) as %q", key, twice, got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] > 0x7e {
				t.Fatalf("accepted non-printable byte %#x", got[i])
			}
		}
		if id := messages.DeriveID("alice", got); !hexID.MatchString(id) || id != messages.DeriveID("alice", got) {
			t.Fatalf("derived id %q", id)
		}
	})
}
