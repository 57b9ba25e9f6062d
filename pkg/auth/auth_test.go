package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestHS256(t *testing.T) {
	v, err := NewHS256(secret, Options{})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := Mint(secret, "alice", time.Minute)
	other, _ := Mint([]byte("another-secret-of-32-bytes-long!"), "alice", time.Minute)
	expired, _ := Mint(secret, "alice", -time.Hour)
	badSub, _ := Mint(secret, "../bob", time.Minute)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString(secret)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)

	p, err := v.Verify(good)
	if err != nil || p.UserID != "alice" {
		t.Fatalf("good token: %v %v", p, err)
	}
	for name, tok := range map[string]string{
		"bad signature": other, "expired": expired, "bad sub": badSub, "no exp": noExp,
		"alg none": none, "other alg": hs512, "garbage": "a.b.c", "too long": strings.Repeat("a", 9000),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("want ErrInvalidToken, got %v", err)
			}
		})
	}
	if _, err := v.Verify(""); !errors.Is(err, ErrNoToken) {
		t.Errorf("empty: %v", err)
	}
	if _, err := NewHS256([]byte("short"), Options{}); err == nil {
		t.Error("short secret accepted")
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"Bearer abc", "abc", nil}, {"bearer  abc ", "abc", nil}, {"", "", ErrNoToken},
		{"Basic abc", "", ErrInvalidToken}, {"Bearer", "", ErrInvalidToken}, {"Bearer  ", "", ErrInvalidToken},
	} {
		got, err := BearerToken(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestValidateUserID(t *testing.T) {
	for id, ok := range map[string]bool{
		"alice": true, "u-1_2.3:x@y+z": true, strings.Repeat("a", 128): true,
		"": false, strings.Repeat("a", 129): false, "a/b": false, ".": false, "..": false, "__x__": false, "é": false, "a b": false,
	} {
		if err := ValidateUserID(id); (err == nil) != ok {
			t.Errorf("ValidateUserID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

// TestJWKSRefreshesOnUnknownKey serves a key set over HTTP, rotates the key,
// and checks that a token signed with the new key verifies after the
// verifier refetches the set.
func TestJWKSRefreshesOnUnknownKey(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	var current atomic.Pointer[rsa.PrivateKey]
	var kid atomic.Value
	current.Store(k1)
	kid.Store("k1")
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		k := current.Load()
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid.Load().(string),
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		}}})
	}))
	defer srv.Close()

	v, err := NewJWKS(context.Background(), srv.URL, Options{Issuer: "iss", Audience: "aud"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	sign := func(k *rsa.PrivateKey, id string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "carol", "iss": "iss", "aud": "aud", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = id
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if p, err := v.Verify(sign(k1, "k1")); err != nil || p.UserID != "carol" {
		t.Fatalf("k1: %v %v", p, err)
	}
	current.Store(k2)
	kid.Store("k2")
	if p, err := v.Verify(sign(k2, "k2")); err != nil || p.UserID != "carol" {
		t.Fatalf("rotated key k2 not picked up: %v %v (fetches %d)", p, err, fetches.Load())
	}
	// An HS256 token "signed" with the public key must never pass a JWKS verifier.
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "carol", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("k"))
	if _, err := v.Verify(hs); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("hs256 accepted by jwks verifier: %v", err)
	}
}
