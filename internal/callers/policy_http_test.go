package callers_test

import (
	"net/http"
	"strings"
	"testing"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphsim"
	"tunnelgateway/internal/policy"
)

// TestPolicyOverHTTP authenticates real callers and checks what the policy lets them do.
func TestPolicyOverHTTP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	portal := realToken(t, h.sim, graphsim.PortalClientID, graphsim.PortalClientSecret)
	tests := []struct {
		name       string
		rq         request
		wantStatus int
		wantReason string
		wantDetail string
	}{
		{name: "portal renames on any site", rq: request{method: http.MethodPatch,
			bearer: portal, site: graphsim.SecondSiteID,
			body: `{"@odata.type":"#microsoft.graph.microsoftTunnelServer","displayName":"x"}`},
			wantStatus: http.StatusOK},
		{name: "portal reads", rq: request{bearer: portal}, wantStatus: http.StatusOK},
		{name: "portal refused property", rq: request{method: http.MethodPatch, bearer: portal,
			body: `{"serverImageDigest":"sha256:0"}`},
			wantStatus: http.StatusForbidden, wantReason: policy.ReasonPropertyRefused,
			wantDetail: "may not change property serverImageDigest"},
		{name: "agent reports status", rq: request{method: http.MethodPatch, apiKey: agentKey,
			body: `{"tunnelServerHealthStatus":"healthy"}`}, wantStatus: http.StatusOK},
		{name: "agent refused site", rq: request{method: http.MethodPatch, apiKey: agentKey,
			site: graphsim.SecondSiteID, body: `{"tunnelServerHealthStatus":"healthy"}`},
			wantStatus: http.StatusForbidden, wantReason: policy.ReasonSiteNotGranted,
			wantDetail: "may not touch site " + graphsim.SecondSiteID},
		{name: "agent refused read", rq: request{apiKey: agentKey},
			wantStatus: http.StatusForbidden, wantReason: policy.ReasonReadNotGranted},
		{name: "entra app not in the policy", rq: request{bearer: mintFor(t, h.sim,
			graphsim.DefaultClientID)},
			wantStatus: http.StatusForbidden, wantReason: policy.ReasonUnknownCaller,
			wantDetail: "entra:" + graphsim.DefaultClientID + " is not in the policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := h.call(t, tt.rq)
			check(t, got, tt.rq, tt.wantStatus, tt.wantReason)
			if !strings.Contains(got.detail, tt.wantDetail) {
				t.Errorf("detail: got %q, want it to contain %q", got.detail, tt.wantDetail)
			}
		})
	}
}

// mintFor signs a token for clientID carrying the gateway role, as if it had been granted.
func mintFor(t *testing.T, sim *graphsim.Simulator, clientID string) string {
	t.Helper()
	return mint(t, sim, func(c map[string]any) {
		c["azp"], c["appid"] = clientID, clientID
		c["roles"] = []string{graphsim.GatewayRoleWrite}
	}, graphsim.MintOptions{})
}

// TestReloadOverHTTP changes the policy file under a running gateway: a good reload revokes
// the agent's key and adds a new one, a bad reload changes nothing.
func TestReloadOverHTTP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	const newKey = "7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b"
	status := `{"tunnelServerHealthStatus":"healthy"}`
	rename := `{"displayName":"renamed"}`
	goodPolicy := `callers:
- name: agent-2
  apiKeySha256: ` + callers.HashAPIKey(newKey) + `
  properties: [displayName]
`
	badPolicy := `callers:
- name: agent-3
  apiKeySha256: ` + callers.HashAPIKey(agentKey) + `
  properties: [displayName, color]
`
	type want struct {
		key    string
		body   string
		status int
		reason string
	}
	steps := []struct {
		name       string
		doc        string // written and reloaded unless empty
		wantReload string // substring of the reload error; "" means success
		calls      []want
	}{
		{name: "initial policy", calls: []want{
			{agentKey, status, http.StatusOK, ""},
			{newKey, status, http.StatusUnauthorized, callers.ReasonUnknownAPIKey},
		}},
		{name: "good reload", doc: goodPolicy, calls: []want{
			{agentKey, status, http.StatusUnauthorized, callers.ReasonUnknownAPIKey},
			{newKey, rename, http.StatusOK, ""},
			{newKey, status, http.StatusForbidden, policy.ReasonPropertyRefused},
		}},
		{name: "bad reload keeps the policy", doc: badPolicy,
			wantReload: `properties[1] "color": is not an updatable property`, calls: []want{
				{agentKey, rename, http.StatusUnauthorized, callers.ReasonUnknownAPIKey},
				{newKey, rename, http.StatusOK, ""},
			}},
	}
	for _, step := range steps {
		if step.doc != "" {
			h.writePolicy(t, step.doc)
			err := h.store.Reload()
			switch {
			case step.wantReload == "" && err != nil:
				t.Fatalf("%s: Reload: %v", step.name, err)
			case step.wantReload != "" && (err == nil ||
				!strings.Contains(err.Error(), step.wantReload)):
				t.Fatalf("%s: Reload: got %v, want an error containing %q", step.name, err,
					step.wantReload)
			}
		}
		for i, c := range step.calls {
			rq := request{method: http.MethodPatch, apiKey: c.key, body: c.body}
			got := h.call(t, rq)
			if got.status != c.status || got.reason != c.reason {
				t.Errorf("%s, call %d: got %d %q, want %d %q", step.name, i, got.status,
					got.reason, c.status, c.reason)
			}
		}
	}
}
