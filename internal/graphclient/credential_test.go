package graphclient_test

import (
	"net/http"
	"testing"
	"time"

	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/graphsim"
)

// TestTokenCachedAcrossCalls sends 50 calls with the real ClientSecretCredential and checks
// the simulator's token endpoint was asked once: azcore's bearer policy caches the token.
func TestTokenCachedAcrossCalls(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	c := newClient(t, sim, clientSetup{})
	ctx := testContext(t, 30*time.Second)

	for i := range 50 {
		var err error
		if i%2 == 0 {
			_, err = c.GetServer(ctx, siteID, serverID, newID())
		} else {
			_, err = c.PatchServer(ctx, siteID, serverID, patchBody("cached"), newID())
		}
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	counters := sim.Counters()
	if got, want := counters.TokenRequests, int64(1); got != want {
		t.Errorf("token requests: got %d, want %d", got, want)
	}
	if got, want := counters.Count(http.MethodPatch, patchRoute, 200), int64(25); got != want {
		t.Errorf("PATCHes applied: got %d, want %d", got, want)
	}
}

// TestCheckTokenReadsRoles checks the start-up token check against the simulator's apps: the
// gateway app holds the write role, the read-only app does not.
func TestCheckTokenReadsRoles(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	tests := []struct {
		name, clientID, secret string
		wantWrite              bool
	}{
		{name: "gateway app", clientID: graphsim.DefaultClientID,
			secret: graphsim.DefaultClientSecret, wantWrite: true},
		{name: "read-only app", clientID: graphsim.ReadOnlyClientID,
			secret: graphsim.ReadOnlyClientSecret, wantWrite: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := credentialFor(t, sim, tt.clientID, tt.secret)
			info, err := graphclient.CheckToken(testContext(t, 10*time.Second), cred, graphScope)
			if err != nil {
				t.Fatalf("CheckToken: %v", err)
			}
			if got := info.HasWriteRole(); got != tt.wantWrite {
				t.Errorf("HasWriteRole: got %v, want %v (roles %v)", got, tt.wantWrite, info.Roles)
			}
			if time.Until(info.ExpiresOn) < 30*time.Minute {
				t.Errorf("ExpiresOn: got %s, want about an hour ahead", info.ExpiresOn)
			}
		})
	}

	t.Run("wrong secret", func(t *testing.T) {
		cred := credentialFor(t, sim, graphsim.DefaultClientID, "not-the-secret")
		_, err := graphclient.CheckToken(testContext(t, 10*time.Second), cred, graphScope)
		if err == nil {
			t.Fatal("CheckToken with a wrong secret: got success")
		}
		if _, ok := err.(*graphclient.CredentialError); !ok {
			t.Errorf("error: got %T, want *CredentialError", err)
		}
	})
}
