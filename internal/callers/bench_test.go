package callers_test

import (
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"testing"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphsim"
)

// keyList is a KeySource of n generated keys.
type keyList []callers.APIKey

func (k keyList) APIKeys() []callers.APIKey { return k }

// BenchmarkAuthenticate measures the work per request, without the network: verifying an RS256
// token against cached keys, and matching an API key against lists of growing length.
func BenchmarkAuthenticate(b *testing.B) {
	sim, err := graphsim.Start(graphsim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close() })
	claims, err := sim.TokenClaims(graphsim.PortalClientID, graphsim.GatewayAppID)
	if err != nil {
		b.Fatal(err)
	}
	token, err := sim.MintToken(claims, graphsim.MintOptions{})
	if err != nil {
		b.Fatal(err)
	}
	auth, err := callers.New(b.Context(), entraConfig(sim), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("bearer", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		for b.Loop() {
			if _, err := auth.Authenticate(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("api key among %d", n), func(b *testing.B) {
			keys := make(keyList, n)
			var last string
			for i := range keys {
				key, _, _ := callers.GenerateAPIKey()
				keys[i].Name = fmt.Sprint("key-", i)
				keys[i].SHA256 = sumOf(key)
				last = key
			}
			auth, err := callers.New(b.Context(), callers.Config{}, keys, nil)
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("X-Api-Key", last)
			for b.Loop() {
				if _, err := auth.Authenticate(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sumOf(key string) [32]byte {
	return sha256.Sum256([]byte(key))
}
