package callers

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
)

// maxAPIKeyBytes bounds a presented key; generated keys are 64 characters.
const maxAPIKeyBytes = 1024

// matchAPIKey finds the configured key whose hash is the presented key's hash. It compares
// against every configured hash, without stopping at a match, so the time taken does not say
// which entry matched or how far down the list it is.
func matchAPIKey(keys []APIKey, presented string) (name string, ok bool) {
	sum := sha256.Sum256([]byte(presented))
	match := -1
	for i := range keys {
		if subtle.ConstantTimeCompare(sum[:], keys[i].SHA256[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return keys[match].Name, true
}

func (a *Authenticator) authenticateAPIKey(presented string) (Caller, *Error) {
	switch {
	case presented == "":
		return Caller{}, a.unauthorized(ReasonMalformedHeader,
			"X-Api-Key must hold one non-empty key")
	case len(presented) > maxAPIKeyBytes:
		return Caller{}, a.unauthorized(ReasonMalformedHeader, fmt.Sprintf(
			"X-Api-Key is too long (limit %d characters); keys are 64", maxAPIKeyBytes))
	}
	var keys []APIKey
	if a.keys != nil {
		keys = a.keys.APIKeys()
	}
	name, ok := matchAPIKey(keys, presented)
	if !ok {
		return Caller{}, a.unauthorized(ReasonUnknownAPIKey,
			"the API key is not known; it may have been revoked")
	}
	return Caller{Kind: KindAPIKey, ID: name, Name: name}, nil
}
