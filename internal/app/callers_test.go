package app_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"tunnelgateway/internal/demo"
	"tunnelgateway/internal/graphsim"
)

// callerToken gets a real Entra token for the gateway's API, as a portal would.
func callerToken(t *testing.T, sim *graphsim.Simulator, clientID, secret string) string {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(sim.TenantID(), clientID, secret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: sim.AuthorityHost()},
				Transport: sim.Client(),
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(),
		policy.TokenRequestOptions{Scopes: []string{graphsim.GatewayAppIDURI + "/.default"}})
	if err != nil {
		t.Fatalf("caller token: %v", err)
	}
	return tok.Token
}

// TestEntraCallerAndPolicyReload sends a portal's real Entra token through the gateway: the
// policy lets it rename but not report health, until a reload grants that too. A bad reload
// keeps the policy in force.
func TestEntraCallerAndPolicyReload(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	policyPath := s.policyPath

	token := callerToken(t, s.sim, graphsim.PortalClientID, graphsim.PortalClientSecret)
	bearer := map[string]string{"Authorization": "Bearer " + token}
	patch := func(body string) response {
		return s.do(t, request{method: http.MethodPatch, path: v1Server(site, server), body: body,
			headers: bearer, noKey: true})
	}

	if got := patch(`{"displayName":"from-portal"}`); got.status != http.StatusOK {
		t.Fatalf("portal rename: %d %s", got.status, got.body)
	}
	refused := patch(`{"tunnelServerHealthStatus":"warning"}`)
	if refused.status != http.StatusForbidden || !strings.Contains(refused.body, "tunnelServerHealthStatus") {
		t.Fatalf("portal health report: %d %s, want 403 naming the property", refused.status, refused.body)
	}

	// A bad file is refused and the old policy stays.
	must(t, os.WriteFile(policyPath, []byte("callers: [{name: broken}]\n"), 0o600))
	if err := s.gw.ReloadPolicy(); err == nil {
		t.Error("a policy without identity or grants was accepted")
	}
	if got := patch(`{"displayName":"still-allowed"}`); got.status != http.StatusOK {
		t.Errorf("after a bad reload the portal lost its grant: %d %s", got.status, got.body)
	}

	// A good file takes effect without a restart.
	granted := strings.Replace(demo.Policy(testAPIKey), "properties: [displayName]\n",
		"properties: [displayName, tunnelServerHealthStatus]\n", 1)
	must(t, os.WriteFile(policyPath, []byte(granted), 0o600))
	if err := s.gw.ReloadPolicy(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got := patch(`{"tunnelServerHealthStatus":"warning"}`); got.status != http.StatusOK {
		t.Errorf("after the reload: %d %s, want 200", got.status, got.body)
	}

	// A caller without the gateway's app role is refused before the policy is asked.
	other := callerToken(t, s.sim, graphsim.NoGatewayRoleClientID, graphsim.NoGatewayRoleClientSecret)
	got := s.do(t, request{method: http.MethodPatch, path: v1Server(site, server), noKey: true,
		body: `{"displayName":"x"}`, headers: map[string]string{"Authorization": "Bearer " + other}})
	if got.status != http.StatusForbidden || got.header.Get("WWW-Authenticate") == "" {
		t.Errorf("caller without the role: %d %s (WWW-Authenticate %q)", got.status, got.body,
			got.header.Get("WWW-Authenticate"))
	}
}
