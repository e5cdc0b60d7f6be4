package app_test

import (
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"tunnelgateway/internal/graphsim"
)

// scrape reads the admin listener's /metrics.
func (s *stack) scrape(t *testing.T) string {
	t.Helper()
	resp, err := s.client.Get(s.adminURL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d, want 200", resp.StatusCode)
	}
	return string(body)
}

// series returns the lines of text for the metric name, labels and value, sorted.
func series(text, name string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out
}

// TestRefusalMetrics refuses a caller for each reason the gateway has (no credential, a
// property the policy does not grant) and sends a PATCH whose body never fully arrives:
// caller_denials_total counts the two refusals only; the broken body counts under its status.
func TestRefusalMetrics(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	portal := callerToken(t, s.sim, graphsim.PortalClientID, graphsim.PortalClientSecret)

	if got := s.do(t, request{method: http.MethodPatch, path: v1Server(site, server),
		body: `{"displayName":"x"}`, noKey: true}); got.status != http.StatusUnauthorized {
		t.Fatalf("no credential: got %d, want 401", got.status)
	}
	if got := s.do(t, request{method: http.MethodPatch, path: v1Server(site, server),
		body: `{"tunnelServerHealthStatus":"warning"}`, noKey: true,
		headers: map[string]string{"Authorization": "Bearer " + portal}}); got.status !=
		http.StatusForbidden {
		t.Fatalf("property not granted: got %d, want 403", got.status)
	}
	if got := s.patchEndingEarly(t); got.status != http.StatusBadRequest {
		t.Fatalf("body ending early: got %d, want 400", got.status)
	}

	text := s.scrape(t)
	want := []string{
		`tunnelgateway_caller_denials_total{reason="missing_credentials"} 1`,
		`tunnelgateway_caller_denials_total{reason="property_not_granted"} 1`,
	}
	if got := series(text, "tunnelgateway_caller_denials_total"); strings.Join(got, "\n") !=
		strings.Join(want, "\n") {
		t.Errorf("caller denials:\ngot  %q\nwant %q", got, want)
	}
	broken := `tunnelgateway_requests_total{code="400",method="PATCH",` +
		`route="/v1/tunnel-sites/:siteId/servers/:serverId"} 1`
	if !strings.Contains(text, broken+"\n") {
		t.Errorf("requests_total lacks the broken body's 400: want %s in\n%s", broken,
			strings.Join(series(text, "tunnelgateway_requests_total"), "\n"))
	}
	if got := series(text, "tunnelgateway_validation_failures_total"); len(got) != 0 {
		t.Errorf("validation failures: got %q, want none (no body was judged)", got)
	}
}
