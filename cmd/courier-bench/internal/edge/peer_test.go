package edge

import (
	"testing"

	"github.com/courierhq/courier/pkg/harness/wsclient"
)

func TestParsePeer(t *testing.T) {
	tests := []struct {
		in   string
		kind wsclient.Kind
		seq  int64
	}{
		{`{"id":1,"connect":{"client":"c","version":"6.9.1","ping":600,"pong":true}}`, wsclient.Other, -1},
		{`{"id":2,"subscribe":{}}`, wsclient.Synced, -1},
		{`{"push":{"channel":"group","pub":{"data":{"s":42,"p":"xx"},"offset":3}}}`, wsclient.Message, 42},
		{`{"id":2,"error":{"code":103,"message":"permission denied"}}`, wsclient.Error, -1},
	}
	for _, tc := range tests {
		f := parsePeer([]byte(tc.in))
		if f.Kind != tc.kind || f.Seq != tc.seq || (tc.seq == 42) != (f.Cursor == 3) {
			t.Errorf("parsePeer(%s) = kind %d seq %d cursor %d, want kind %d seq %d (cursor 3 for the publication)", tc.in, f.Kind, f.Seq, f.Cursor, tc.kind, tc.seq)
		}
	}
}
