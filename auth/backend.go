package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// BackendService is a SMART Backend Services registration of this service
// at an EHR's authorization server.
type BackendService struct {
	TokenURL string `yaml:"token_url"`
	ClientID string `yaml:"client_id"`
	Scope    string `yaml:"scope"`
}

// ClientKey is this service's signing key for SMART Backend Services
// client assertions: ES384 (P-384) or RS384 (RSA).
type ClientKey struct {
	signer crypto.Signer
	alg    string
	kid    string
}

// LoadClientKey reads a PEM private key (PKCS#8, SEC 1 EC or PKCS#1 RSA).
func LoadClientKey(path string) (*ClientKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return NewClientKey(key)
}

// NewClientKey wraps a P-384 ECDSA or an RSA (2048 bits or more) private key.
func NewClientKey(key any) (*ClientKey, error) {
	k := &ClientKey{}
	switch p := key.(type) {
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P384() {
			return nil, fmt.Errorf("EC key on %s: ES384 needs P-384", p.Curve.Params().Name)
		}
		k.signer, k.alg = p, "ES384"
	case *rsa.PrivateKey:
		if p.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 needed", p.N.BitLen())
		}
		k.signer, k.alg = p, "RS384"
	default:
		return nil, fmt.Errorf("key type %T: ES384 (P-384) or RS384 (RSA) keys only", key)
	}
	der, err := x509.MarshalPKIXPublicKey(k.signer.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	k.kid = base64.RawURLEncoding.EncodeToString(sum[:16])
	return k, nil
}

// JWKS returns the public JWK Set served at /.well-known/jwks.json, from
// which authorization servers verify our client assertions.
func (k *ClientKey) JWKS() []byte {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwk := map[string]any{"kid": k.kid, "alg": k.alg, "use": "sig", "key_ops": []string{"verify"}}
	switch p := k.signer.Public().(type) {
	case *ecdsa.PublicKey:
		point, _ := p.Bytes() // 0x04 || X || Y, 48 bytes each on P-384
		jwk["kty"], jwk["crv"] = "EC", "P-384"
		jwk["x"], jwk["y"] = b64(point[1:49]), b64(point[49:97])
	case *rsa.PublicKey:
		jwk["kty"], jwk["n"], jwk["e"] = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	}
	b, _ := json.Marshal(map[string]any{"keys": []any{jwk}})
	return b
}

// assertion is a private_key_jwt client assertion for tokenURL.
func (k *ClientKey) assertion(clientID, tokenURL string, now time.Time) (string, error) {
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), jwt.RegisteredClaims{
		Issuer: clientID, Subject: clientID, Audience: jwt.ClaimStrings{tokenURL},
		ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now), ID: uuid.NewString(),
	})
	tok.Header["kid"] = k.kid
	return tok.SignedString(k.signer)
}

// TokenSource gets and caches SMART Backend Services access tokens
// (client_credentials grant with a private_key_jwt assertion), reusing each
// until a minute before it expires.
type TokenSource struct {
	key    *ClientKey
	client *http.Client
	mu     sync.Mutex
	cache  map[BackendService]cachedToken
	now    func() time.Time
}

type cachedToken struct {
	token   string
	expires time.Time
}

// NewTokenSource returns a token source signing with key; client carries
// the egress policy and TLS roots.
func NewTokenSource(key *ClientKey, client *http.Client) *TokenSource {
	return &TokenSource{key: key, client: client, cache: map[BackendService]cachedToken{}, now: time.Now}
}

// Token returns an access token for the registration.
func (s *TokenSource) Token(ctx context.Context, b BackendService) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock() // one token request at a time: callers waiting get the cached token
	if c, ok := s.cache[b]; ok && s.now().Before(c.expires) {
		return c.token, nil
	}
	assertion, err := s.key.assertion(b.ClientID, b.TokenURL, s.now())
	if err != nil {
		return "", fmt.Errorf("backend services: sign assertion: %w", err)
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {b.Scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("backend services: token_url %q: %w", b.TokenURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("backend services: POST %s: %w", b.TokenURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var oauthErr struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &oauthErr)
		return "", fmt.Errorf("backend services: POST %s answered %s %s", b.TokenURL, resp.Status, oauthErr.Error)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "bearer") {
		return "", fmt.Errorf("backend services: %s returned no bearer access_token", b.TokenURL)
	}
	if tr.ExpiresIn <= 0 {
		tr.ExpiresIn = 300
	}
	s.cache[b] = cachedToken{token: tr.AccessToken, expires: s.now().Add(time.Duration(tr.ExpiresIn)*time.Second - time.Minute)}
	return tr.AccessToken, nil
}
