package app_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/graphsim"
)

// TestLogsHoldNoSecrets runs a gateway logging at debug level and sends it every kind of
// credential, good and bad, including a PATCH that reaches Graph with the gateway's own
// token: no API key, token, client secret or Authorization value may appear in any logged
// message or field, nor in the audit trail.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.DebugLevel)
	s := startStack(t, stackOptions{logger: zap.New(core)})

	const wrongKey = "wrong-key-fedcba9876543210"
	portal := callerToken(t, s.sim, graphsim.PortalClientID, graphsim.PortalClientSecret)
	claims, err := s.sim.TokenClaims(graphsim.PortalClientID, graphsim.GatewayAppID)
	must(t, err)
	forged, err := s.sim.MintToken(claims,
		graphsim.MintOptions{Mode: graphsim.SignUnregisteredKey})
	must(t, err)

	bearer := func(token string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + token}
	}
	tests := []struct {
		name       string
		r          request
		wantStatus int
	}{
		{name: "valid api key, patch reaching graph", r: request{method: http.MethodPatch,
			path: v1Server(site, server), body: `{"displayName":"secret-free"}`},
			wantStatus: http.StatusOK},
		{name: "wrong api key", r: request{method: http.MethodGet, path: v1Server(site, server),
			noKey: true, headers: map[string]string{"X-Api-Key": wrongKey}},
			wantStatus: http.StatusUnauthorized},
		{name: "valid portal token, patch reaching graph", r: request{method: http.MethodPatch,
			path: v1Server(site, server), body: `{"displayName":"from-portal"}`, noKey: true,
			headers: bearer(portal)}, wantStatus: http.StatusOK},
		{name: "valid portal token, refused property", r: request{method: http.MethodPatch,
			path: v1Server(site, server), body: `{"tunnelServerHealthStatus":"warning"}`,
			noKey: true, headers: bearer(portal)}, wantStatus: http.StatusForbidden},
		{name: "forged token", r: request{method: http.MethodGet, path: v1Server(site, server),
			noKey: true, headers: bearer(forged)}, wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		if got := s.do(t, tt.r); got.status != tt.wantStatus {
			t.Errorf("%s: got %d %s, want %d", tt.name, got.status, got.body, tt.wantStatus)
		}
	}

	secrets := map[string]string{
		"the api key":          testAPIKey,
		"the wrong api key":    wrongKey,
		"the portal's token":   portal,
		"the forged token":     forged,
		"the gateway's secret": graphsim.DefaultClientSecret,
		"an Authorization":     "Bearer ",
	}
	entries := logs.All()
	// The scan means something only if the requests were logged, rejections included.
	if n := logs.FilterMessage("request").Len(); n != len(tests) {
		t.Errorf("access log lines: got %d, want %d", n, len(tests))
	}
	if logs.FilterMessage("bearer token rejected").Len() == 0 {
		t.Error("the forged token's rejection was not logged at debug level")
	}
	for _, e := range entries {
		text := entryText(e)
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("log entry %q holds %s: %s", e.Message, what, text)
			}
		}
	}

	// The last ResponseComplete events reach the file with the next group commit.
	waitForEvents(t, s.auditPath, func(events []audit.Event) bool {
		completed := 0
		for _, e := range events {
			if e.Stage == audit.StageResponseComplete {
				completed++
			}
		}
		return completed == len(tests)
	})
	raw, err := os.ReadFile(s.auditPath)
	must(t, err)
	for what, secret := range secrets {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the audit trail holds %s", what)
		}
	}
}

// entryText renders a log entry's message, logger, caller, stack and every field as the
// encoder would see them.
func entryText(e observer.LoggedEntry) string {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range e.Context {
		f.AddTo(enc)
	}
	return fmt.Sprintf("%s %s %s %s %v", e.Message, e.LoggerName, e.Caller, e.Stack,
		enc.Fields)
}
