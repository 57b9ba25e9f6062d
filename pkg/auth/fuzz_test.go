package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/courierhq/courier/pkg/auth/authtest"
)

// How FuzzVerify signs the token it builds.
const (
	signHS256Secret    = iota // HS256 with the HS verifier's secret: the only valid HS token
	signRS256IdP              // RS256 with the IdP's key: the only valid JWKS token
	signHS256PublicPEM        // HS256 keyed with the IdP's public key (PEM): HS/RS confusion
	signHS256PublicN          // HS256 keyed with the public modulus bytes
	signRS256Other            // RS256 with a key the IdP never published
	signNone                  // no signature ("alg":"none" style)
	signRaw                   // the fuzzer's own bytes as the signature
	signKinds
)

// FuzzVerify builds a token from a fuzzed header, fuzzed claims and one
// way of signing, and gives it to an HS256 verifier and to a JWKS verifier
// (the production one, with issuer and audience). Properties: no panic;
// every error is ErrNoToken or ErrInvalidToken; a token is accepted only
// when signed validly for that verifier (HS256 with the secret; RS256 with
// the IdP's published key, never an HS token keyed with the public key,
// never "none"), and then its claims are good: a valid sub that is the
// principal, a future exp, and for JWKS the issuer and audience.
func FuzzVerify(f *testing.F) {
	idp := authtest.New(f)
	hs, err := NewHS256(secret, Options{})
	if err != nil {
		f.Fatal(err)
	}
	jwks, err := NewJWKS(context.Background(), idp.URL, Options{Issuer: authtest.Issuer, Audience: authtest.Audience})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(jwks.Close)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&idp.Key.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	exp := time.Now().Add(24 * time.Hour).Unix()
	good := `{"sub":"alice","iss":"` + authtest.Issuer + `","aud":"` + authtest.Audience + `","exp":` + jsonInt(exp) + `}`
	for _, seed := range []struct {
		header, claims string
		how            uint8
	}{
		{`{"alg":"HS256","typ":"JWT"}`, good, signHS256Secret},
		{`{"alg":"RS256","kid":"` + authtest.KeyID + `"}`, good, signRS256IdP},
		{`{"alg":"RS256"}`, good, signRS256IdP}, // no kid
		{`{"alg":"RS256","kid":"unknown"}`, good, signRS256IdP},
		{`{"alg":"RS256","kid":"` + authtest.KeyID + `"}`, good, signRS256Other},
		{`{"alg":"HS256","kid":"` + authtest.KeyID + `"}`, good, signHS256PublicPEM},
		{`{"alg":"HS256","kid":"` + authtest.KeyID + `"}`, good, signHS256PublicN},
		{`{"alg":"none"}`, good, signNone},
		{`{"alg":"None","kid":"` + authtest.KeyID + `"}`, good, signNone},
		{`{"alg":"HS256"}`, `{"sub":"alice","exp":"tomorrow"}`, signHS256Secret},
		{`{"alg":"HS256"}`, `{"sub":"__x__","exp":` + jsonInt(exp) + `}`, signHS256Secret},
		{`{"alg":"HS256"}`, `{"sub":"alice","exp":1e400}`, signHS256Secret},
		{`{"alg":"HS256"}`, `{"sub":["alice"],"aud":[1,2],"exp":` + jsonInt(exp) + `}`, signHS256Secret},
		{`{"alg":"RS256","kid":"` + authtest.KeyID + `"}`, `{"sub":"alice","iss":"` + authtest.Issuer + `","aud":["x","` + authtest.Audience + `"],"exp":` + jsonInt(exp) + `,"nbf":` + jsonInt(exp) + `}`, signRS256IdP},
		{`not json`, `{}`, signRaw},
	} {
		f.Add(seed.header, seed.claims, seed.how, []byte("sig"))
	}
	b64 := base64.RawURLEncoding.EncodeToString
	f.Fuzz(func(t *testing.T, header, claims string, how uint8, raw []byte) {
		how %= signKinds
		input := b64([]byte(header)) + "." + b64([]byte(claims))
		var sig []byte
		switch how {
		case signHS256Secret:
			sig = hmacSHA256(secret, input)
		case signHS256PublicPEM:
			sig = hmacSHA256(pubPEM, input)
		case signHS256PublicN:
			sig = hmacSHA256(idp.Key.N.Bytes(), input)
		case signRS256IdP, signRS256Other:
			key := idp.Key
			if how == signRS256Other {
				key = other
			}
			s, err := jwt.SigningMethodRS256.Sign(input, key)
			if err != nil {
				t.Fatal(err)
			}
			sig = s
		case signRaw:
			sig = raw
		}
		tok := input + "." + b64(sig)
		for name, v := range map[string]*Verifier{"hs256": hs, "jwks": jwks} {
			p, err := v.Verify(tok)
			if err != nil {
				if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrNoToken) {
					t.Fatalf("%s: undocumented error %v", name, err)
				}
				continue
			}
			var h struct {
				Alg string `json:"alg"`
				Kid string `json:"kid"`
			}
			_ = json.Unmarshal([]byte(header), &h)
			switch {
			case name == "hs256" && (how != signHS256Secret || h.Alg != "HS256"):
				t.Fatalf("hs256 verifier accepted a token signed by way %d, alg %q", how, h.Alg)
			case name == "jwks" && (how != signRS256IdP || h.Alg != "RS256" || h.Kid != authtest.KeyID):
				t.Fatalf("jwks verifier accepted a token signed by way %d, alg %q, kid %q", how, h.Alg, h.Kid)
			}
			var c struct {
				Sub string `json:"sub"`
				Iss string `json:"iss"`
				Aud any    `json:"aud"`
			}
			if err := json.Unmarshal([]byte(claims), &c); err != nil {
				t.Fatalf("%s accepted claims that are not a JSON object: %q", name, claims)
			}
			if c.Sub != p.UserID || ValidateUserID(p.UserID) != nil {
				t.Fatalf("%s: principal %q from sub %q", name, p.UserID, c.Sub)
			}
			if !p.ExpiresAt.After(time.Now().Add(-time.Minute)) {
				t.Fatalf("%s accepted a token that expired at %v", name, p.ExpiresAt)
			}
			if name == "jwks" && (c.Iss != authtest.Issuer || !hasAudience(c.Aud, authtest.Audience)) {
				t.Fatalf("jwks accepted iss %q aud %v", c.Iss, c.Aud)
			}
		}
	})
}

func hmacSHA256(key []byte, input string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return m.Sum(nil)
}

func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if x == want {
				return true
			}
		}
	}
	return false
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// FuzzVerifyRaw hands arbitrary strings to both kinds of verifier: no
// panic, only the documented errors, and nothing unsigned is accepted.
func FuzzVerifyRaw(f *testing.F) {
	hs, err := NewHS256(secret, Options{})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := Mint(secret, "alice", time.Hour)
	for _, s := range []string{good, "", "a.b.c", "..", "a.b", strings.Repeat("a.", 5000), "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := hs.Verify(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrNoToken) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		// Accepted: the fuzzer cannot forge an HMAC, so it must be a
		// validly signed token (the seed).
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || b64(hmacSHA256(secret, parts[0]+"."+parts[1])) != parts[2] {
			t.Fatalf("accepted %q as %v without a valid signature", tok, p)
		}
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestAlgorithmConfusion names the cases FuzzVerify explores: against the
// JWKS verifier, only RS256 signed with the published key passes.
func TestAlgorithmConfusion(t *testing.T) {
	idp := authtest.New(t)
	v, err := NewJWKS(context.Background(), idp.URL, Options{Issuer: authtest.Issuer, Audience: authtest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	pubDER, _ := x509.MarshalPKIXPublicKey(&idp.Key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	claims := authtest.Claims("alice")
	sign := func(m jwt.SigningMethod, key any, kid string) string {
		tok := jwt.NewWithClaims(m, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if p, err := v.Verify(sign(jwt.SigningMethodRS256, idp.Key, authtest.KeyID)); err != nil || p.UserID != "alice" {
		t.Fatalf("valid RS256: %v %v", p, err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, tok := range map[string]string{
		"HS256 keyed with the public key PEM": sign(jwt.SigningMethodHS256, pubPEM, authtest.KeyID),
		"HS256 keyed with the modulus":        sign(jwt.SigningMethodHS256, idp.Key.N.Bytes(), authtest.KeyID),
		"alg none":                            sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, authtest.KeyID),
		"unknown kid":                         sign(jwt.SigningMethodRS256, idp.Key, "someone-else"),
		"absent kid":                          sign(jwt.SigningMethodRS256, idp.Key, ""),
		"unpublished key":                     sign(jwt.SigningMethodRS256, other, authtest.KeyID),
	} {
		if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
}
