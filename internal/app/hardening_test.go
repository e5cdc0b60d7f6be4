package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphsim"
)

// TestHostileRequests covers what a hostile or broken client sends beyond a bad body: made-up
// methods, redirects bait, wrong methods on the Graph route, oversized bodies of unknown names.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	longQueryNames := make([]string, 300)
	for i := range longQueryNames {
		longQueryNames[i] = fmt.Sprintf("p%d%s=1", i, strings.Repeat("q", 200))
	}
	longNames := make([]string, 16)
	for i := range longNames {
		longNames[i] = fmt.Sprintf(`"p%02d%s":1`, i, strings.Repeat("x", 3900))
	}
	// A caller that pastes its key into the URL gets it back in its own answer, and the audit
	// trail never holds it.
	const pastedKey = "9d46b6ae66a2dcb0f5783e6dbcd3d1542691992d53fdb847082c96936ea25b91"
	many := make([]string, 3000)
	for i := range many {
		many[i] = fmt.Sprintf(`"unknown%d":1`, i)
	}
	for _, tc := range []struct {
		name      string
		r         request
		status    int
		mentions  []string
		graphForm bool
	}{
		{name: "a trailing slash is not redirected", r: request{method: http.MethodGet,
			path: v1Server(site, server) + "/"}, status: http.StatusNotFound},
		{name: "a wrong method on the graph route answers in graph's shape",
			r:      request{method: http.MethodDelete, path: graphServer(site, server)},
			status: http.StatusMethodNotAllowed, graphForm: true},
		{name: "thousands of unknown names cost one error",
			r: request{method: http.MethodPatch, path: v1Server(site, server),
				body: "{" + strings.Join(many, ",") + "}"},
			status: http.StatusBadRequest, mentions: []string{"too_many_members"}},
		{name: "a path of 60,000 bytes is not echoed whole", r: request{method: http.MethodGet,
			path: "/v1/" + strings.Repeat("U", 60_000)}, status: http.StatusNotFound},
		{name: "hundreds of query names are not echoed whole", r: request{method: http.MethodGet,
			path: "/v1/tunnel-sites?" + strings.Join(longQueryNames, "&")},
			status: http.StatusBadRequest, mentions: []string{"more query parameters"}},
		{name: "sixteen names of 3,900 bytes are not echoed whole",
			r: request{method: http.MethodPatch, path: v1Server(site, server),
				body: "{" + strings.Join(longNames, ",") + "}"},
			status: http.StatusBadRequest, mentions: []string{"shown cut"}},
		{name: "a key pasted as a query name", r: request{method: http.MethodGet,
			path: "/v1/tunnel-sites?" + pastedKey}, status: http.StatusBadRequest,
			mentions: []string{pastedKey}},
		{name: "the spec refuses query strings too", r: request{method: http.MethodGet,
			path: "/openapi.yaml?format=json"}, status: http.StatusBadRequest,
			mentions: []string{"/query/format"}},
		{name: "a control character in a name", r: request{method: http.MethodPatch,
			path: v1Server(site, server), body: `{"displayName":"eu\u0000west"}`},
			status: http.StatusBadRequest, mentions: []string{"control_character"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.do(t, tc.r)
			if got.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", got.status, tc.status, got.body)
			}
			if got.header.Get("X-Request-Id") == "" {
				t.Error("answer has no X-Request-Id")
			}
			if tc.graphForm != strings.HasPrefix(got.body, `{"error":`) {
				t.Errorf("graph error shape = %v, want %v: %s", !tc.graphForm, tc.graphForm, got.body)
			}
			if len(got.body) > 8192 {
				t.Errorf("answer is %d bytes, want a short one", len(got.body))
			}
			for _, m := range tc.mentions {
				if !strings.Contains(got.body, m) {
					t.Errorf("answer does not mention %q: %s", m, got.body)
				}
			}
		})
	}

	// HEAD is answered wherever GET is, without a body.
	for _, path := range []string{v1Server(site, server), graphServer(site, server),
		"/v1/tunnel-sites", "/openapi.yaml"} {
		got := s.do(t, request{method: http.MethodHead, path: path})
		if got.status != http.StatusOK || got.body != "" {
			t.Errorf("HEAD %s: status %d with %d bytes, want 200 and no body", path, got.status,
				len(got.body))
		}
	}

	// Made-up methods share one metric label instead of adding series.
	for i := range 5 {
		s.do(t, request{method: fmt.Sprintf("MADEUP%d", i), path: v1Server(site, server)})
	}
	resp, err := http.Get(s.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(metricsText), "MADEUP") {
		t.Error("/metrics grew a series for a made-up method")
	}
	// A wrong method on a real route counts under that route, not as unmatched.
	wrongMethod := `tunnelgateway_requests_total{code="405",method="DELETE",` +
		`route="/beta/deviceManagement/microsoftTunnelSites/:siteId/microsoftTunnelServers/:serverId"}`
	if !strings.Contains(string(metricsText), wrongMethod) {
		t.Errorf("/metrics has no %s", wrongMethod)
	}

	// Nothing a caller sends makes an audit line longer than a few kilobytes.
	trail, err := os.ReadFile(s.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(trail)), "\n") {
		if len(line) > 4096 {
			t.Errorf("audit line %d is %d bytes: %.200s…", i+1, len(line), line)
		}
	}
	if strings.Contains(string(trail), pastedKey) {
		t.Error("the audit trail holds a query parameter's name")
	}
}

// TestBodyEndsEarly sends fewer bytes than Content-Length promises and closes: the answer is
// a clear 400, not a 500.
func TestBodyEndsEarly(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	got := s.patchEndingEarly(t)
	if got.status != http.StatusBadRequest || !strings.Contains(got.body, "body") {
		t.Errorf("status %d, body %s; want 400 about the body", got.status, got.body)
	}
}

// patchEndingEarly sends a PATCH with fewer bytes than its Content-Length promises, stops
// sending, and returns the answer.
func (s *stack) patchEndingEarly(t *testing.T) response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: gateway\r\nX-Api-Key: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"displayName\":",
		v1Server(site, server), testAPIKey)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	must(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// TestSiteRestrictedCallerListsItsSites lists sites as a caller granted one site: it sees that
// site only, instead of a refusal.
func TestSiteRestrictedCallerListsItsSites(t *testing.T) {
	t.Parallel()
	policy := fmt.Sprintf(`callers:
  - name: west
    apiKeySha256: %s
    read: true
    sites: [%s]
`, callers.HashAPIKey(testAPIKey), graphsim.SecondSiteID)
	s := startStack(t, stackOptions{policy: policy})
	got := s.do(t, request{method: http.MethodGet, path: "/v1/tunnel-sites"})
	if got.status != http.StatusOK {
		t.Fatalf("status %d: %s", got.status, got.body)
	}
	if !strings.Contains(got.body, graphsim.SecondSiteID) || strings.Contains(got.body, site) {
		t.Errorf("listed %s, want only site %s", got.body, graphsim.SecondSiteID)
	}
	if other := s.do(t, request{method: http.MethodGet, path: "/v1/tunnel-sites/" + site +
		"/servers"}); other.status != http.StatusForbidden {
		t.Errorf("another site's servers: %d, want 403", other.status)
	}
}
