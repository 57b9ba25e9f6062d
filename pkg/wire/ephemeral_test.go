package wire_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/pkg/wire"
)

func ephemeral() *courierv1.Ephemeral {
	return wire.NewEphemeral([]string{"bob", "carol"}, "signal", []byte(`{"type":"signal","from":"alice","kind":"typing"}`), timestamppb.Now())
}

func TestEphemeralRoundTrip(t *testing.T) {
	e := ephemeral()
	m, err := wire.EncodeEphemeral(e)
	if err != nil {
		t.Fatal(err)
	}
	if m.Attributes[wire.AttrSchema] != "courier.v1.Ephemeral" || m.Attributes[wire.AttrRecipients] != "bob,carol" {
		t.Fatalf("attributes %v", m.Attributes)
	}
	if m.OrderingKey != "" {
		t.Error("an ephemeral event carries no ordering key")
	}
	got, err := wire.DecodeEphemeral(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, e) {
		t.Fatalf("decoded %v, want %v", got, e)
	}
	if !wire.MayConcern(m.Attributes, func(u string) bool { return u == "carol" }) ||
		wire.MayConcern(m.Attributes, func(u string) bool { return u == "dave" }) {
		t.Error("MayConcern does not follow the recipient list")
	}
}

func TestEphemeralLongRecipientListIsLeftOut(t *testing.T) {
	e := ephemeral()
	e.Users = nil
	for i := range 200 {
		e.Users = append(e.Users, strings.Repeat("u", 10)+string(rune('a'+i%26))+strings.Repeat("x", i%7))
	}
	m, err := wire.EncodeEphemeral(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Attributes[wire.AttrRecipients]; ok {
		t.Fatal("a list over the attribute limit must be left out (the edge then decodes)")
	}
}

func TestEphemeralValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(e *courierv1.Ephemeral)
	}{
		{"no users", func(e *courierv1.Ephemeral) { e.Users = nil }},
		{"bad user", func(e *courierv1.Ephemeral) { e.Users = []string{"a,b"} }},
		{"too many users", func(e *courierv1.Ephemeral) { e.Users = make([]string, wire.MaxEphemeralUsers+1) }},
		{"empty kind", func(e *courierv1.Ephemeral) { e.Kind = "" }},
		{"bad kind", func(e *courierv1.Ephemeral) { e.Kind = "Typing!" }},
		{"long kind", func(e *courierv1.Ephemeral) { e.Kind = strings.Repeat("a", 33) }},
		{"frame not JSON", func(e *courierv1.Ephemeral) { e.Frame = []byte("nope") }},
		{"frame an array", func(e *courierv1.Ephemeral) { e.Frame = []byte(`[1]`) }},
		{"frame without type", func(e *courierv1.Ephemeral) { e.Frame = []byte(`{"a":1}`) }},
		{"frame type not a string", func(e *courierv1.Ephemeral) { e.Frame = []byte(`{"type":1}`) }},
		{"frame with a newline", func(e *courierv1.Ephemeral) { e.Frame = []byte("{\"type\":\"x\",\n\"a\":1}") }},
		{"frame too large", func(e *courierv1.Ephemeral) {
			e.Frame = []byte(`{"type":"x","d":"` + strings.Repeat("a", wire.MaxEphemeralFrameBytes) + `"}`)
		}},
		{"bad sent_at", func(e *courierv1.Ephemeral) { e.SentAt = &timestamppb.Timestamp{Seconds: -1 << 62} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ephemeral()
			tc.edit(e)
			if _, err := wire.EncodeEphemeral(e); !errors.Is(err, wire.ErrEphemeral) {
				t.Fatalf("encode: %v, want ErrEphemeral", err)
			}
			data, err := proto.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := wire.DecodeEphemeral(data); !errors.Is(err, wire.ErrEphemeral) {
				t.Fatalf("decode: %v, want ErrEphemeral", err)
			}
		})
	}
}

// FuzzDecodeEphemeral: no input panics; every error wraps ErrEphemeral;
// what decodes is valid and re-encodes to the same event.
func FuzzDecodeEphemeral(f *testing.F) {
	good, err := proto.Marshal(ephemeral())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff})
	bad, _ := proto.Marshal(&courierv1.Ephemeral{Users: []string{"__x__"}, Kind: "A", Frame: []byte(`{"type":`)})
	f.Add(bad)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := wire.DecodeEphemeral(data)
		if err != nil {
			if !errors.Is(err, wire.ErrEphemeral) {
				t.Fatalf("error %v does not wrap ErrEphemeral", err)
			}
			return
		}
		if err := wire.ValidateEphemeral(e); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		m, err := wire.EncodeEphemeral(e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := wire.DecodeEphemeral(m.Data)
		if err != nil || !proto.Equal(back, e) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
