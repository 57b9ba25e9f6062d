package authn

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/config"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr []string // substrings; nil means no error
	}{
		{"none set names both", map[string]string{}, []string{"AUTH_JWKS_URL", "AUTH_HS256_SECRET"}},
		{"short secret", map[string]string{"AUTH_HS256_SECRET": "short"}, []string{"AUTH_HS256_SECRET"}},
		{"secret", map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef"}, nil},
		{"jwks", map[string]string{"AUTH_JWKS_URL": "https://idp.test/jwks.json", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a"}, nil},
		{"jwks without issuer", map[string]string{"AUTH_JWKS_URL": "https://idp.test/jwks.json", "AUTH_AUDIENCE": "a"}, []string{"AUTH_ISSUER"}},
		{"jwks without audience", map[string]string{"AUTH_JWKS_URL": "https://idp.test/jwks.json", "AUTH_ISSUER": "i"}, []string{"AUTH_AUDIENCE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := config.FromMap(tc.env)
			c := ConfigFromEnv(e)
			err := e.Err()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.Issuer != tc.env["AUTH_ISSUER"] || c.Audience != tc.env["AUTH_AUDIENCE"] {
					t.Errorf("config %+v", c)
				}
				return
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not name %s", err, w)
				}
			}
		})
	}
}

func TestNewVerifierPrefersJWKS(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwks))
	}))
	defer idp.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const secret = "0123456789abcdef"
	v, err := NewVerifier(ctx, Config{JWKSURL: idp.URL, HS256Secret: secret, Issuer: "iss", Audience: "aud"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	claims := jwt.RegisteredClaims{Subject: "alice", Issuer: "iss", Audience: jwt.ClaimStrings{"aud"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}
	rs := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	rs.Header["kid"] = "k1"
	rsTok, _ := rs.SignedString(key)
	if p, err := Authenticate(v, "Bearer "+rsTok); err != nil || p.UserID != "alice" {
		t.Fatalf("IdP token refused: %v %v", p, err)
	}
	// With a JWKS configured, the development secret is never used.
	hsTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if _, err := Authenticate(v, "Bearer "+hsTok); err == nil {
		t.Fatal("HS256 token accepted while a JWKS is configured")
	}

	hv, err := NewVerifier(ctx, Config{HS256Secret: secret, Issuer: "iss"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := Authenticate(hv, "Bearer "+hsTok); err != nil || p.UserID != "alice" {
		t.Fatalf("dev token refused: %v %v", p, err)
	}
	if _, err := NewVerifier(ctx, Config{}); err == nil {
		t.Fatal("no key source accepted")
	}
}

func TestAuthenticate(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	v, _ := auth.NewHS256(secret, auth.Options{})
	good, _ := auth.Mint(secret, "alice", time.Hour)
	for _, tc := range []struct {
		header       string
		ok           bool
		invalidToken bool
	}{
		{"Bearer " + good, true, false},
		{"bearer " + good, true, false},
		{"", false, false},
		{"Bearer", false, true},
		{"Basic " + good, false, true},
		{"Bearer x.y.z", false, true},
		{"Bearer " + good + "x", false, true},
	} {
		p, err := Authenticate(v, tc.header)
		if tc.ok {
			if err != nil || p.UserID != "alice" {
				t.Errorf("%q: %v %v", tc.header, p, err)
			}
			continue
		}
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != apierr.Unauthenticated || ae.InvalidToken != tc.invalidToken {
			t.Errorf("%q: %#v", tc.header, err)
		}
		if strings.Contains(ae.Detail, good) {
			t.Errorf("detail echoes the token")
		}
	}
}

// FuzzAuthenticate feeds arbitrary Authorization values to the shared
// authentication: no panic, refusals are Unauthenticated, and only a
// "Bearer" header with a token signed by our key for a valid user id is
// ever accepted. Seeds: testdata/fuzz/FuzzAuthenticate.
func FuzzAuthenticate(f *testing.F) {
	secret := []byte("fuzz-secret-0123456789")
	v, err := auth.NewHS256(secret, auth.Options{})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := auth.Mint(secret, "alice", 24*time.Hour)
	for _, s := range []string{"Bearer " + good, "bearer  " + good + " ", "", "Bearer", "Bearer ", "Basic abc",
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", "Bearer a.b.c", "Bearer " + strings.Repeat("A", 9000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, err := Authenticate(v, header)
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Code != apierr.Unauthenticated {
				t.Fatalf("refusal is not unauthenticated: %v", err)
			}
			return
		}
		scheme, rest, _ := strings.Cut(header, " ")
		if !strings.EqualFold(scheme, "bearer") || auth.ValidateUserID(p.UserID) != nil {
			t.Fatalf("accepted %q as %+v", header, p)
		}
		// Accepted tokens verify on their own: the header parsing did not
		// turn garbage into a token.
		if _, err := v.Verify(strings.TrimSpace(rest)); err != nil {
			t.Fatalf("accepted %q, but its token does not verify: %v", header, err)
		}
	})
}
