// Package authtest makes signing keys, JWK Sets and CDS client JWTs for
// tests, generated at test time.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Key is a signing key with its kid and JWT algorithm.
type Key struct {
	Kid     string
	Alg     string
	Private any
}

// NewKey makes a fresh key: ES256/384/512 or RS256/384/512 or PS256/384/512.
func NewKey(t testing.TB, kid, alg string) Key {
	t.Helper()
	var priv any
	var err error
	switch alg[:2] {
	case "ES":
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		priv, err = ecdsa.GenerateKey(curve, rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return Key{Kid: kid, Alg: alg, Private: priv}
}

// JWKS returns the public JWK Set of keys.
func JWKS(keys ...Key) []byte {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range keys {
		switch p := k.Private.(type) {
		case *ecdsa.PrivateKey:
			size := (p.Curve.Params().BitSize + 7) / 8
			point, _ := p.PublicKey.Bytes() // 0x04 || X || Y
			set.Keys = append(set.Keys, map[string]string{"kty": "EC", "crv": p.Curve.Params().Name, "kid": k.Kid, "alg": k.Alg, "use": "sig",
				"x": b64(point[1 : 1+size]), "y": b64(point[1+size:])})
		case *rsa.PrivateKey:
			set.Keys = append(set.Keys, map[string]string{"kty": "RSA", "kid": k.Kid, "alg": k.Alg, "use": "sig",
				"n": b64(p.N.Bytes()), "e": b64(big.NewInt(int64(p.E)).Bytes())})
		}
	}
	b, _ := json.Marshal(set)
	return b
}

// Claims returns the claims of a fresh, valid CDS client token.
func Claims(iss, aud string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": iss, "aud": aud, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": uuid.NewString(), "sub": "ehr-client"}
}

// Sign signs claims with k, kid in the header, plus extra header fields.
func Sign(t testing.TB, k Key, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	tok.Header["kid"] = k.Kid
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
			continue
		}
		tok.Header[name] = v
	}
	s, err := tok.SignedString(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
