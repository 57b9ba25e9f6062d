package wire

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// BenchmarkDecode measures the worker's per-message decode and validation
// of a typical envelope (3 recipients, 200-byte JSON payload).
func BenchmarkDecode(b *testing.B) {
	data, err := proto.Marshal(&courierv1.Envelope{
		MessageId: "0123456789abcdef0123456789abcdef", Sender: "alice", Recipients: []string{"bob", "carol", "dave"},
		Payload:     []byte(`{"text":"hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello"}`),
		ContentType: "application/json", SentAt: timestamppb.Now(),
	})
	if err != nil {
		b.Fatal(err)
	}
	l := Limits{MaxEnvelopeBytes: 1 << 20, MaxPayloadBytes: 256 << 10, MaxRecipients: 100}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeEnvelope(data, nil, l); err != nil {
			b.Fatal(err)
		}
	}
}
