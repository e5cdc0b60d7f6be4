package callers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// The kinds of credential a caller can present.
const (
	// KindEntra marks a caller identified by an Entra ID access token; its ID is the client
	// application id (the token's azp or appid claim).
	KindEntra = "entra"
	// KindAPIKey marks a caller identified by an API key; its ID is the key's configured name.
	KindAPIKey = "apikey"
)

// Caller is an authenticated caller. It carries the identity only, never the credential, so it
// can go into logs and audit events as it is.
type Caller struct {
	// Kind is KindEntra or KindAPIKey.
	Kind string
	// ID is the client application id for KindEntra and the key's name for KindAPIKey.
	ID string
	// Name is the caller's name in the policy, the one people know it by. A token names only
	// an application id, so for KindEntra it is empty until the policy has been asked, and
	// stays empty when the policy has no entry for the id. For KindAPIKey it equals ID.
	Name string
}

// String renders the caller as "kind:name" for logs and messages, or "kind:id" while it has
// no name.
func (c Caller) String() string {
	if c.Name != "" {
		return c.Kind + ":" + c.Name
	}
	return c.Kind + ":" + c.ID
}

// APIKey is one accepted API key, known only by its name and the SHA-256 digest of the key.
type APIKey struct {
	Name   string
	SHA256 [sha256.Size]byte
}

// KeySource gives the API keys accepted right now. It is asked on every request that presents
// an API key, so a source that reloads (the policy store on SIGHUP) revokes and adds keys
// without a restart. The returned slice must not be modified by either side.
type KeySource interface {
	APIKeys() []APIKey
}

// HashAPIKey returns the lowercase hex SHA-256 of key: the value a policy file stores for it.
// It equals the output of `printf %s KEY | sha256sum`.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// GenerateAPIKey returns a new random API key (32 random bytes as 64 hex characters, as
// `openssl rand -hex 32` prints) and its hash for the policy file.
func GenerateAPIKey() (key, hash string, err error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("generate api key: %w", err)
	}
	key = hex.EncodeToString(raw[:])
	return key, HashAPIKey(key), nil
}
