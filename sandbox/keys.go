package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// EHRKey is the key the kit signs its CDS client JWTs with (ES384, as CDS
// Hooks recommends), with its key id: the RFC 7638 thumbprint.
type EHRKey struct {
	Private *ecdsa.PrivateKey
	Kid     string
}

// LoadOrCreateKey reads a PEM P-384 key (PKCS#8 or SEC 1) from path, or,
// when there is no file, makes one and writes it there (mode 0600). It
// reports whether it made it.
func LoadOrCreateKey(path string) (EHRKey, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return EHRKey{}, false, fmt.Errorf("key %s: %w", path, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return EHRKey{}, false, fmt.Errorf("key %s: %w", path, err)
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return EHRKey{}, false, fmt.Errorf("key %s: %w", path, err)
		}
		return EHRKey{Private: k, Kid: thumbprint(&k.PublicKey)}, true, nil
	}
	if err != nil {
		return EHRKey{}, false, fmt.Errorf("key %s: %w", path, err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return EHRKey{}, false, fmt.Errorf("key %s: no PEM block", path)
	}
	var k *ecdsa.PrivateKey
	if parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		k, _ = parsed.(*ecdsa.PrivateKey)
	} else if k, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
		return EHRKey{}, false, fmt.Errorf("key %s: not a PKCS#8 or SEC 1 EC private key: %w", path, err)
	}
	if k == nil || k.Curve != elliptic.P384() {
		return EHRKey{}, false, fmt.Errorf("key %s: want an EC P-384 key (ES384)", path)
	}
	return EHRKey{Private: k, Kid: thumbprint(&k.PublicKey)}, false, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// coordinates returns the public point's x and y, each 48 bytes.
func coordinates(pub *ecdsa.PublicKey) (x, y string) {
	point, _ := pub.Bytes() // 0x04 || X || Y
	return b64(point[1:49]), b64(point[49:])
}

// thumbprint is the RFC 7638 JWK thumbprint of an EC public key.
func thumbprint(pub *ecdsa.PublicKey) string {
	x, y := coordinates(pub)
	sum := sha256.Sum256([]byte(`{"crv":"P-384","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return b64(sum[:])
}

// JWKS is the public JWK Set to register with the service (an issuer's
// jwks_file, or served at its jwks_url).
func (k EHRKey) JWKS() []byte {
	x, y := coordinates(&k.Private.PublicKey)
	b, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "EC", "crv": "P-384", "kid": k.Kid, "alg": "ES384", "use": "sig", "x": x, "y": y}}})
	return b
}

// Sign returns a fresh CDS client JWT for one call: aud is the exact URL
// called, a new jti each time, five minutes of life.
func (k EHRKey) Sign(iss, aud string) (string, error) {
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodES384, jwt.MapClaims{
		"iss": iss, "sub": iss, "aud": aud, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": uuid.NewString()})
	t.Header["kid"] = k.Kid
	t.Header["typ"] = "JWT"
	s, err := t.SignedString(k.Private)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return s, nil
}

// IssuerEntry is the service's issuers-file entry for the kit as EHR.
func IssuerEntry(iss, jwksFile string, fhirServers, dicomwebBases []string) []byte {
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	list := func(v []string) string {
		out := "["
		for i, s := range v {
			if i > 0 {
				out += ", "
			}
			out += quote(s)
		}
		return out + "]"
	}
	s := "- iss: " + quote(iss) + "\n  jwks_file: " + quote(jwksFile) + "\n  fhir_servers: " + list(fhirServers) + "\n"
	if len(dicomwebBases) > 0 {
		s += "  dicomweb_bases: " + list(dicomwebBases) + "\n"
	}
	return []byte(s)
}
