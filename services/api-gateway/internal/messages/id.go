package messages

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// MaxIdempotencyKeyLen is the longest accepted Idempotency-Key.
const MaxIdempotencyKeyLen = 128

// ParseIdempotencyKey checks an Idempotency-Key: 1 to 128 printable ASCII
// characters (space to tilde).
func ParseIdempotencyKey(k string) (string, error) {
	if k == "" || len(k) > MaxIdempotencyKeyLen {
		return "", apierr.New(apierr.InvalidRequest, "Idempotency-Key: want 1 to %d printable ASCII characters", MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", apierr.New(apierr.InvalidRequest, "Idempotency-Key: character %d is not printable ASCII", i)
		}
	}
	return k, nil
}

// NewID returns a random message id: 128 bits as 32 lowercase hex digits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// DeriveID returns the id of sender's message with idempotency key: the
// first 128 bits of SHA-256(sender NUL key), as 32 lowercase hex digits, the
// same shape as NewID. The NUL keeps ("ab","c") and ("a","bc") apart (user
// ids never contain NUL). The same sender and key always give the same id,
// so a retried request publishes an envelope the worker drops as a repeat.
func DeriveID(sender, key string) string {
	h := sha256.New()
	h.Write([]byte(sender))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil)[:16])
}
