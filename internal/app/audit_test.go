package app_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphsim"
)

// waitForEvents polls the audit file until pred holds for its events; ResponseComplete events
// reach the disk with the next group commit, a moment after the answer.
func waitForEvents(t *testing.T, path string, pred func([]audit.Event) bool) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		events, err := audit.ReadEvents(path)
		if err == nil && pred(events) {
			return events
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit file never held the expected events; last read: %d events, err %v",
				len(events), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requestEvents waits until the request's ResponseComplete event is on disk and returns the
// request's events by stage.
func requestEvents(t *testing.T, path, requestID string) map[audit.Stage]audit.Event {
	t.Helper()
	events := waitForEvents(t, path, func(ev []audit.Event) bool {
		_, done := eventsFor(ev, requestID)[audit.StageResponseComplete]
		return done
	})
	return eventsFor(events, requestID)
}

func eventsFor(events []audit.Event, requestID string) map[audit.Stage]audit.Event {
	out := map[audit.Stage]audit.Event{}
	for _, e := range events {
		if e.AuditID == requestID {
			out[e.Stage] = e
		}
	}
	return out
}

// TestAuditEveryOutcome checks the audit events of each kind of outcome: success, validation
// failure, caller refused, Graph error and timeout.
func TestAuditEveryOutcome(t *testing.T) {
	t.Parallel()
	unknown := "0f0f0f0f-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name       string
		sim        graphsim.Options
		configure  func(*config.Config)
		r          request
		status     int
		received   bool // a RequestReceived event precedes the answer
		annotation string
		upstream   bool
		// unidentified: no route matched, so the credential was never checked.
		unidentified bool
		// bearer, when set, gets the token the request sends instead of the API key.
		bearer func(t *testing.T, sim *graphsim.Simulator) string
		// wantAppID is the application id the event must name.
		wantAppID string
	}{
		{name: "success", r: request{method: http.MethodPatch, path: v1Server(site, server),
			body: `{"displayName":"audited"}`}, status: 200, received: true, upstream: true},
		{name: "validation failure", r: request{method: http.MethodPatch, path: v1Server(site, server),
			body: `{"displayName":""}`}, status: 400, annotation: audit.AnnotationValidation},
		{name: "caller refused", r: request{method: http.MethodPatch, path: v1Server(site, server),
			body: `{"displayName":"x"}`, noKey: true}, status: 401, annotation: audit.AnnotationRefused},
		{name: "graph error", r: request{method: http.MethodPatch, path: v1Server(site, unknown),
			body: `{"displayName":"x"}`}, status: 404, received: true, upstream: true,
			annotation: audit.AnnotationError},
		{name: "timeout", sim: graphsim.Options{Faults: graphsim.Faults{
			Methods: []string{http.MethodPatch}, StallRate: 1, StallFor: 10 * time.Second}},
			configure: func(c *config.Config) {
				c.Requests.Timeout = 600 * time.Millisecond
				c.Requests.UpstreamTimeout = 400 * time.Millisecond
			},
			r: request{method: http.MethodPatch, path: v1Server(site, server),
				body: `{"displayName":"x"}`}, status: 504, received: true,
			annotation: audit.AnnotationError},
		{name: "read", r: request{method: http.MethodGet, path: v1Server(site, server)}, status: 200,
			upstream: true},
		{name: "the spec", r: request{method: http.MethodGet, path: "/openapi.yaml"}, status: 200},
		{name: "no such route", r: request{method: http.MethodGet, path: "/v1/nowhere"}, status: 404,
			annotation: audit.AnnotationError, unidentified: true},
		// Refused, but identified: the event must say which application was refused.
		{name: "token without the gateway role", r: request{method: http.MethodPatch,
			path: v1Server(site, server), body: `{"displayName":"x"}`},
			bearer: func(t *testing.T, sim *graphsim.Simulator) string {
				return callerToken(t, sim, graphsim.NoGatewayRoleClientID,
					graphsim.NoGatewayRoleClientSecret)
			},
			status: 403, annotation: audit.AnnotationRefused,
			wantAppID: graphsim.NoGatewayRoleClientID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, stackOptions{sim: tc.sim, configure: tc.configure})
			// U+2028 ends a line in some readers; the trail must keep it inside the string.
			tc.r.headers = map[string]string{"User-Agent": "portal/1.0\u2028{\"auditID\":\"forged\"}"}
			identified := (!tc.r.noKey || tc.bearer != nil) && !tc.unidentified
			if tc.bearer != nil {
				tc.r.noKey = true
				tc.r.headers["Authorization"] = "Bearer " + tc.bearer(t, s.sim)
			}
			got := s.do(t, tc.r)
			if got.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", got.status, tc.status, got.body)
			}
			id := got.header.Get("X-Request-Id")
			byStage := requestEvents(t, s.auditPath, id)
			done := byStage[audit.StageResponseComplete]
			if done.ResponseStatus == nil || done.ResponseStatus.Code != tc.status {
				t.Errorf("ResponseComplete status = %+v, want %d", done.ResponseStatus, tc.status)
			}
			if _, ok := byStage[audit.StageRequestReceived]; ok != tc.received {
				t.Errorf("RequestReceived present = %v, want %v", ok, tc.received)
			}
			if tc.annotation != "" && done.Annotations[tc.annotation] == "" {
				t.Errorf("annotations = %v, want %s", done.Annotations, tc.annotation)
			}
			if (done.Upstream != nil && done.Upstream.RequestID != "") != tc.upstream {
				t.Errorf("upstream = %+v, want graph's request id: %v", done.Upstream, tc.upstream)
			}
			if identified != (done.User.Kind != "") {
				t.Errorf("user = %+v for an identified caller: %v", done.User, identified)
			}
			if done.User.AppID != tc.wantAppID {
				t.Errorf("user.appId = %q, want %q", done.User.AppID, tc.wantAppID)
			}
			if tc.received && byStage[audit.StageRequestReceived].Level != audit.LevelRequest {
				t.Errorf("a write is audited at %s, want Request level",
					byStage[audit.StageRequestReceived].Level)
			}
			all, err := audit.ReadEvents(s.auditPath)
			if err != nil {
				t.Fatalf("read the audit trail: %v", err)
			}
			for _, e := range all {
				if e.AuditID == "forged" {
					t.Error("a user agent forged an audit line")
				}
			}
			raw, _ := os.ReadFile(s.auditPath)
			if strings.Contains(string(raw), testAPIKey) {
				t.Error("the audit trail holds the caller's API key")
			}
		})
	}
}

// TestAuditFailureStopsWrites makes the audit trail fail mid-run: writes are answered 503,
// none reaches the simulator, and readiness turns false until the trail recovers.
func TestAuditFailureStopsWrites(t *testing.T) {
	t.Parallel()
	auditDir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(auditDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOptions{configure: func(c *config.Config) {
		c.Audit.Path = filepath.Join(auditDir, "audit.log")
	}})
	write := func(name string) response {
		return s.do(t, request{method: http.MethodPatch, path: v1Server(site, server),
			body: fmt.Sprintf(`{"displayName":%q}`, name)})
	}
	if got := write("before"); got.status != 200 {
		t.Fatalf("first write: %d %s", got.status, got.body)
	}
	before := s.sim.Counters().PatchesApplied

	// The audit directory is replaced by a file, as when a volume goes away.
	if err := os.RemoveAll(auditDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auditDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		got := write(fmt.Sprintf("after-%d", i))
		if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "audit") {
			t.Errorf("write %d with a failing audit trail: %d %s, want 503 naming the audit trail",
				i, got.status, got.body)
		}
	}
	if after := s.sim.Counters().PatchesApplied; after != before {
		t.Errorf("simulator applied %d PATCHes while the audit trail failed, want 0", after-before)
	}
	if err := s.gw.Ready(); err == nil || !strings.Contains(err.Error(), "audit") {
		t.Errorf("Ready() = %v, want an audit failure", err)
	}

	// Once the directory is back, writes go through again.
	if err := os.Remove(auditDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(auditDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := write("recovered"); got.status != 200 {
		t.Errorf("write after recovery: %d %s", got.status, got.body)
	}
	if err := s.gw.Ready(); err != nil {
		t.Errorf("Ready() after recovery = %v, want nil", err)
	}
}

// TestAuditSourceIPs sends a request claiming, in X-Forwarded-For, to come from elsewhere. The
// test's peer is loopback: when loopback is a trusted proxy the forwarded address is recorded
// before the peer's, as Kubernetes orders them; when no proxy is trusted the header is a
// caller's claim and only the peer is recorded.
func TestAuditSourceIPs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		trusted []string
		want    []string
	}{
		{name: "loopback is a trusted proxy", trusted: []string{"127.0.0.0/8"},
			want: []string{"203.0.113.7", "127.0.0.1"}},
		{name: "no proxy is trusted", want: []string{"127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, stackOptions{configure: func(c *config.Config) {
				c.TrustedProxies = tt.trusted
			}})
			got := s.do(t, request{method: http.MethodGet, path: v1Server(site, server),
				headers: map[string]string{"X-Forwarded-For": "203.0.113.7"}})
			if got.status != http.StatusOK {
				t.Fatalf("status: got %d, want 200; body %s", got.status, got.body)
			}
			id := got.header.Get("X-Request-Id")
			ips := requestEvents(t, s.auditPath, id)[audit.StageResponseComplete].SourceIPs
			if strings.Join(ips, ",") != strings.Join(tt.want, ",") {
				t.Errorf("sourceIPs: got %q, want %q", ips, tt.want)
			}
		})
	}
}

// TestAuditListAttempts reads a list Graph cuts into three pages, one of which needs a
// retry: the audit event counts the tries of every page, and the pages apart.
func TestAuditListAttempts(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{sim: graphsim.Options{PageSize: 1}})
	must(t, s.sim.SetFaults(graphsim.Faults{Sequence: []string{"ok", "503", "ok", "ok"}}))

	got := s.do(t, request{method: http.MethodGet, path: "/v1/tunnel-sites/" + site + "/servers"})
	if got.status != http.StatusOK {
		t.Fatalf("status: got %d, want 200; body %s", got.status, got.body)
	}
	id := got.header.Get("X-Request-Id")
	upstream := requestEvents(t, s.auditPath, id)[audit.StageResponseComplete].Upstream
	if upstream == nil || upstream.Attempts != 4 || upstream.Pages != 3 {
		t.Errorf("upstream: got %+v, want 4 attempts over 3 pages", upstream)
	}
}

// TestReadinessRecoversWithoutTraffic fails one write on a broken audit directory, restores
// the directory and sends nothing more: /readyz must turn 200 again on its own, since a pod
// that is not ready gets no traffic that could prove the trail works.
func TestReadinessRecoversWithoutTraffic(t *testing.T) {
	t.Parallel()
	auditDir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(auditDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOptions{configure: func(c *config.Config) {
		c.Audit.Path = filepath.Join(auditDir, "audit.log")
	}})
	if got := probeStatus(t, s.adminURL+"/readyz"); got != http.StatusOK {
		t.Fatalf("readiness before the failure: got %d, want 200", got)
	}

	// The audit directory is replaced by a file, as when a volume goes away.
	if err := os.RemoveAll(auditDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auditDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got := s.do(t, request{method: http.MethodPatch, path: v1Server(site, server),
		body: `{"displayName":"refused"}`})
	if got.status != http.StatusServiceUnavailable {
		t.Fatalf("write with a failing audit trail: got %d %s, want 503", got.status, got.body)
	}
	if got := probeStatus(t, s.adminURL+"/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("readiness with a failing audit trail: got %d, want 503", got)
	}
	// The refusal's own ResponseComplete event must have failed too before the directory
	// comes back; written after, it would be the traffic this test must do without.
	for deadline := time.Now().Add(5 * time.Second); metricValue(t, s.registry,
		"tunnelgateway_audit_failures_total") < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the refused write's ResponseComplete event was never attempted")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := os.Remove(auditDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(auditDir, 0o700); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for probeStatus(t, s.adminURL+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("readiness still failing 5s after the audit directory came back: %v",
				s.gw.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricValue reads a counter or gauge without labels from a registry.
func metricValue(t *testing.T, registry *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name || len(f.GetMetric()) == 0 {
			continue
		}
		if c := f.GetMetric()[0].GetCounter(); c != nil {
			return c.GetValue()
		}
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	t.Fatalf("no metric %s in the registry", name)
	return 0
}

// TestUpperCaseIDs sends a write with the path's GUIDs in upper case: it reaches the server,
// and the audit trail records the ids in the one, lower-case, form.
func TestUpperCaseIDs(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	got := s.do(t, request{method: http.MethodPatch,
		path: v1Server(strings.ToUpper(site), strings.ToUpper(server)),
		body: `{"id":"` + strings.ToUpper(server) + `","displayName":"upper"}`})
	if got.status != http.StatusOK {
		t.Fatalf("status: got %d, want 200; body %s", got.status, got.body)
	}
	if stored, _ := s.sim.Server(site, server); stored["displayName"] != "upper" {
		t.Errorf("simulator holds displayName %v, want %q", stored["displayName"], "upper")
	}

	id := got.header.Get("X-Request-Id")
	for stage, e := range requestEvents(t, s.auditPath, id) {
		if e.ObjectRef == nil || e.ObjectRef.SiteID != site || e.ObjectRef.ServerID != server {
			t.Errorf("%s objectRef: got %+v, want the lower-case ids", stage, e.ObjectRef)
		}
	}
}
