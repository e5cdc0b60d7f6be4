package graphsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/golang-jwt/jwt/v5"
)

// SigningMode chooses how MintToken signs, so tests can produce every kind of bad token.
type SigningMode int

const (
	// SignCurrent signs RS256 with the current key and its kid (what the token endpoint does).
	SignCurrent SigningMode = iota
	// SignPrevious signs with the key that was current before the last RotateSigningKey.
	SignPrevious
	// SignUnknownKID signs with the current key but names a kid the JWKS does not publish.
	SignUnknownKID
	// SignUnregisteredKey signs with a key the JWKS does not publish, under the current kid.
	SignUnregisteredKey
	// SignNone produces an unsigned token with alg "none".
	SignNone
	// SignHS256PublicKey signs HS256 keyed with the current public key's PEM (the classic
	// algorithm-confusion attack).
	SignHS256PublicKey
)

// MintOptions tunes MintToken.
type MintOptions struct {
	Mode SigningMode
	// KID, when set, replaces the kid header.
	KID string
	// Header adds or replaces header fields.
	Header map[string]any
}

// signingKey is one RSA key with the kid the JWKS publishes it under.
type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

// keyring holds the current signing key, the previous one (still published after a rotation)
// and, made on first use, a key that is never published.
type keyring struct {
	mu           sync.Mutex
	current      signingKey
	previous     *signingKey
	unregistered *signingKey
}

func newSigningKey() (signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return signingKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return signingKey{}, fmt.Errorf("encode signing key: %w", err)
	}
	sum := sha256.Sum256(der)
	return signingKey{kid: base64.RawURLEncoding.EncodeToString(sum[:15]), key: key}, nil
}

func newKeyring() (*keyring, error) {
	current, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	return &keyring{current: current}, nil
}

// rotate makes a new current key; the old one stays published as previous.
func (k *keyring) rotate() error {
	next, err := newSigningKey()
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	prev := k.current
	k.previous = &prev
	k.current = next
	return nil
}

// published returns the keys the JWKS lists, current first.
func (k *keyring) published() []signingKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := []signingKey{k.current}
	if k.previous != nil {
		keys = append(keys, *k.previous)
	}
	return keys
}

// publicKey finds a published key by kid.
func (k *keyring) publicKey(kid string) (*rsa.PublicKey, bool) {
	for _, sk := range k.published() {
		if sk.kid == kid {
			return &sk.key.PublicKey, true
		}
	}
	return nil, false
}

func (k *keyring) currentKey() signingKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.current
}

func (k *keyring) unregisteredKey() (signingKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.unregistered == nil {
		sk, err := newSigningKey()
		if err != nil {
			return signingKey{}, err
		}
		k.unregistered = &sk
	}
	return *k.unregistered, nil
}

// mint signs claims as opts asks.
func (k *keyring) mint(claims map[string]any, opts MintOptions) (string, error) {
	current := k.currentKey()
	method, key, kid := jwt.SigningMethod(jwt.SigningMethodRS256), any(current.key), current.kid
	switch opts.Mode {
	case SignCurrent:
	case SignPrevious:
		k.mu.Lock()
		prev := k.previous
		k.mu.Unlock()
		if prev == nil {
			return "", errors.New("mint token: no previous key; call RotateSigningKey first")
		}
		key, kid = prev.key, prev.kid
	case SignUnknownKID:
		kid = "unknown-" + kid
	case SignUnregisteredKey:
		sk, err := k.unregisteredKey()
		if err != nil {
			return "", fmt.Errorf("mint token: %w", err)
		}
		key = sk.key
	case SignNone:
		method, key = jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType
	case SignHS256PublicKey:
		der, err := x509.MarshalPKIXPublicKey(&current.key.PublicKey)
		if err != nil {
			return "", fmt.Errorf("mint token: %w", err)
		}
		method = jwt.SigningMethodHS256
		key = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	default:
		return "", fmt.Errorf("mint token: unknown signing mode %d", opts.Mode)
	}
	return signToken(claims, method, key, kid, opts)
}

func signToken(claims map[string]any, method jwt.SigningMethod, key any, kid string,
	opts MintOptions) (string, error) {
	token := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	token.Header["kid"] = kid
	if opts.KID != "" {
		token.Header["kid"] = opts.KID
	}
	for name, value := range opts.Header {
		token.Header[name] = value
	}
	signed, err := token.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return signed, nil
}

// jwk is one RSA key as the JWKS endpoint publishes it.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// jwks returns the JSON Web Key Set of the published keys.
func (k *keyring) jwks() map[string][]jwk {
	var keys []jwk
	for _, sk := range k.published() {
		pub := sk.key.PublicKey
		keys = append(keys, jwk{
			Kty: "RSA", Use: "sig", Alg: "RS256", Kid: sk.kid,
			N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	return map[string][]jwk{"keys": keys}
}
