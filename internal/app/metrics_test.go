package app_test

import (
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"tunnelgateway/internal/graphclient"
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

// get sends a GET with the harness's API key to any listener.
func (s *stack) get(t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	must(t, err)
	req.Header.Set("X-Api-Key", testAPIKey)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestListenersAreSeparate checks that the probes and metrics are not on the callers'
// listener, where any caller could read them, and that no caller route is on the admin
// listener, which has no authentication. Every request carries a valid API key, so a 404
// cannot be a refused credential in disguise.
func TestListenersAreSeparate(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	tests := []struct {
		name string
		url  string
	}{
		{name: "metrics on the api listener", url: s.url + "/metrics"},
		{name: "liveness on the api listener", url: s.url + "/healthz"},
		{name: "readiness on the api listener", url: s.url + "/readyz"},
		{name: "site list on the admin listener", url: s.adminURL + "/v1/tunnel-sites"},
		{name: "server on the admin listener", url: s.adminURL + v1Server(site, server)},
		{name: "graph route on the admin listener", url: s.adminURL + graphServer(site, server)},
		{name: "spec on the admin listener", url: s.adminURL + "/openapi.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.get(t, tt.url); got != http.StatusNotFound {
				t.Errorf("GET %s: got %d, want 404", tt.url, got)
			}
		})
	}
	// The probes do answer where they belong.
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if got := s.get(t, s.adminURL+path); got != http.StatusOK {
			t.Errorf("GET admin %s: got %d, want 200", path, got)
		}
	}
}

// guidPattern matches an id in the 8-4-4-4-12 form anywhere in a text.
var guidPattern = regexp.MustCompile(
	`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// TestMetricsUseRouteTemplates sends real reads and writes on both route families and checks
// that /metrics labels them by route template and Graph operation, and holds no id at all:
// one series per site or server would grow without bound.
func TestMetricsUseRouteTemplates(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	for _, r := range []request{
		{method: http.MethodPatch, path: v1Server(site, server), body: `{"displayName":"a"}`},
		{method: http.MethodGet, path: v1Server(site, server)},
		{method: http.MethodGet, path: "/v1/tunnel-sites/" + site + "/servers"},
		{method: http.MethodPatch, path: graphServer(site, server), body: `{"displayName":"b"}`},
	} {
		if got := s.do(t, r); got.status != http.StatusOK && got.status != http.StatusNoContent {
			t.Fatalf("%s %s: got %d %s", r.method, r.path, got.status, got.body)
		}
	}

	text := s.scrape(t)
	for _, want := range []string{
		`tunnelgateway_requests_total{code="200",method="PATCH",` +
			`route="/v1/tunnel-sites/:siteId/servers/:serverId"} 1`,
		`tunnelgateway_requests_total{code="200",method="GET",` +
			`route="/v1/tunnel-sites/:siteId/servers/:serverId"} 1`,
		`tunnelgateway_requests_total{code="200",method="GET",` +
			`route="/v1/tunnel-sites/:siteId/servers"} 1`,
		`route="/beta/deviceManagement/microsoftTunnelSites/:siteId/` +
			`microsoftTunnelServers/:serverId"} 1`,
		`tunnelgateway_upstream_requests_total{code="200",operation="` +
			graphclient.OpGetServer + `"} 1`,
		`tunnelgateway_upstream_requests_total{code="200",operation="` +
			graphclient.OpListServers + `"} 1`,
		`operation="` + graphclient.OpPatchServer + `"} 2`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if ids := guidPattern.FindAllString(text, -1); len(ids) > 0 {
		t.Errorf("/metrics holds ids: %q", ids)
	}
}
