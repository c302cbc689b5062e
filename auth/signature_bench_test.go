package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkSignatureCheck is the signature check of one EHR token by
// algorithm, the part of an authenticated hook call that grows with the
// algorithm the EHR signs with (CDS Hooks names ES384 and RS384): parse
// and verify, no claims policy.
func BenchmarkSignatureCheck(b *testing.B) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, k := range []struct {
		alg    jwt.SigningMethod
		signer crypto.Signer
	}{{jwt.SigningMethodES384, p384}, {jwt.SigningMethodES256, p256}, {jwt.SigningMethodRS384, rsaKey}} {
		claims := jwt.MapClaims{"iss": "https://ehr.example.org", "aud": "https://cds.example.org/cds-services/x",
			"exp": time.Now().Add(time.Hour).Unix(), "jti": "j1"}
		token, err := jwt.NewWithClaims(k.alg, claims).SignedString(k.signer)
		if err != nil {
			b.Fatal(err)
		}
		public := k.signer.Public()
		b.Run(k.alg.Alg(), func(b *testing.B) {
			for b.Loop() {
				if _, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return public, nil }, jwt.WithValidMethods([]string{k.alg.Alg()})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
