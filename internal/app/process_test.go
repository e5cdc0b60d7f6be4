package app_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/demo"
	"tunnelgateway/internal/graphsim"
)

// gatewayProcess is the gateway binary running against a simulator, on loopback.
type gatewayProcess struct {
	cmd        *exec.Cmd
	url        string
	adminURL   string
	auditPath  string
	policyPath string
	stdout     *lockedBuffer
	stderr     *lockedBuffer
	exited     chan struct{}
	exitErr    error // set before exited closes
}

// startProcess builds cmd/gateway and starts it against sim with policy (default
// demo.Policy(testAPIKey)), an audit file and then env, whose settings win. It returns once
// the gateway is ready, and kills it when the test ends if it still runs.
func startProcess(t *testing.T, sim *graphsim.Simulator, policy string,
	env ...string) *gatewayProcess {
	t.Helper()
	bin, err := buildGateway()
	if err != nil {
		t.Fatal(err)
	}
	if policy == "" {
		policy = demo.Policy(testAPIKey)
	}
	dir := t.TempDir()
	p := &gatewayProcess{
		auditPath:  filepath.Join(dir, "audit.log"),
		policyPath: filepath.Join(dir, "policy.yaml"),
		stdout:     &lockedBuffer{},
		stderr:     &lockedBuffer{},
		exited:     make(chan struct{}),
	}
	caFile := filepath.Join(dir, "ca.pem")
	must(t, os.WriteFile(caFile, sim.CACertPEM(), 0o600))
	must(t, os.WriteFile(p.policyPath, []byte(policy), 0o600))
	addr, adminAddr := freeAddr(t), freeAddr(t)
	p.url, p.adminURL = "http://"+addr, "http://"+adminAddr

	p.cmd = exec.Command(bin)
	// exec keeps the last of duplicate variables, so env overrides these.
	p.cmd.Env = append(append(os.Environ(),
		"GRAPH_BASE_URL="+sim.GraphBaseURL(),
		"AZURE_AUTHORITY_HOST="+sim.AuthorityHost(),
		"AZURE_DISABLE_INSTANCE_DISCOVERY=true",
		"AZURE_TENANT_ID="+sim.TenantID(),
		"AZURE_CLIENT_ID="+graphsim.DefaultClientID,
		"AZURE_CLIENT_SECRET="+graphsim.DefaultClientSecret,
		"SSL_CERT_FILE="+caFile,
		"GATEWAY_AUTH_AUDIENCES="+graphsim.GatewayAppID,
		"GATEWAY_POLICY_FILE="+p.policyPath,
		"GATEWAY_AUDIT_LOG="+p.auditPath,
		"GATEWAY_ADDR="+addr,
		"GATEWAY_ADMIN_ADDR="+adminAddr,
		"LOG_LEVEL=warn",
	), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	must(t, p.cmd.Start())
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	waitReady(t, p.adminURL+"/readyz", p.stderr)
	return p
}

func (p *gatewayProcess) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v to the gateway: %v", sig, err)
	}
}

// waitExit waits up to limit for the process to end and returns its exit code.
func (p *gatewayProcess) waitExit(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(limit):
		t.Fatalf("the gateway did not exit within %s; its log:\n%s", limit, p.stderr.String())
	}
	var exitErr *exec.ExitError
	if errors.As(p.exitErr, &exitErr) {
		return exitErr.ExitCode()
	}
	if p.exitErr != nil {
		t.Fatalf("wait for the gateway: %v", p.exitErr)
	}
	return 0
}

// TestSIGTERMUnderLoad sends SIGTERM to the gateway binary while writes wait for a write
// budget that frees its next slot long after the drain timeout. The process must exit 0 within
// the drain timeout and the audit flush, every caller must get an answer (the waiting ones a
// 503 with Retry-After), and the audit file must hold a ResponseComplete event for every answer
// and a RequestReceived event for every write the simulator applied.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	t.Parallel()
	// The drain is shorter than the 10s window, so a waiting write is answered only if the
	// drain wakes it, and long enough that a loaded machine running -race still drains in it.
	const writes, limit, drain = 16, 4, 5 * time.Second
	sim, err := graphsim.Start(graphsim.Options{Seed: manyServers(writes),
		Limits: graphsim.Limits{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	// The request timeout stays at its 60s default: the waiting writes' slots (10s, 20s, 30s
	// away) all lie within it, so they wait rather than being refused at once.
	p := startProcess(t, sim, "",
		"GATEWAY_WRITE_LIMIT="+strconv.Itoa(limit), "GATEWAY_WRITE_WINDOW=10s",
		"GATEWAY_DRAIN_TIMEOUT="+drain.String(), "LOG_LEVEL=info")

	client := &http.Client{Timeout: 30 * time.Second}
	results := make([]writeResult, writes)
	var wg sync.WaitGroup
	for i := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = patchName(client, p.url, serverN(i), "term-"+strconv.Itoa(i))
		}()
	}
	// Stop once every write is accepted: the first ones applied, the rest waiting.
	waitForEvents(t, p.auditPath, func(events []audit.Event) bool {
		received := 0
		for _, e := range events {
			if e.Stage == audit.StageRequestReceived {
				received++
			}
		}
		return received == writes && sim.Counters().PatchesApplied == limit
	})
	p.signal(t, syscall.SIGTERM)
	if code := p.waitExit(t, drain+10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0; log:\n%s", code, p.stderr.String())
	}
	wg.Wait()
	if log := p.stderr.String(); !strings.Contains(log, "stopped: requests drained, audit trail flushed") {
		t.Errorf("the log does not say the gateway stopped cleanly:\n%s", log)
	}

	events, err := audit.ReadEvents(p.auditPath)
	if err != nil {
		t.Fatalf("read the audit trail: %v", err)
	}
	statuses := map[int]int{}
	for i, r := range results {
		statuses[r.status]++
		if r.status == 0 {
			t.Errorf("write %d got no answer: %v", i, r.err)
			continue
		}
		if r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
			t.Errorf("write %d: 503 without Retry-After: %s", i, r.body)
		}
		byStage := eventsFor(events, r.header.Get("X-Request-Id"))
		done, ok := byStage[audit.StageResponseComplete]
		if !ok {
			t.Errorf("write %d was answered %d but has no ResponseComplete event", i, r.status)
		} else if done.ResponseStatus == nil || done.ResponseStatus.Code != r.status {
			t.Errorf("write %d: ResponseComplete status %+v, want %d", i, done.ResponseStatus,
				r.status)
		}
		stored, _ := sim.Server(pacingSite, serverN(i))
		applied := stored["displayName"] == r.name
		if applied != (r.status == http.StatusOK) {
			t.Errorf("write %d: answered %d, applied at the simulator: %v", i, r.status, applied)
		}
		if _, ok := byStage[audit.StageRequestReceived]; applied && !ok {
			t.Errorf("write %d was applied but has no RequestReceived event", i)
		}
	}
	if statuses[http.StatusOK] != limit || statuses[http.StatusServiceUnavailable] != writes-limit {
		t.Errorf("answers: got %v, want %d×200 and %d×503", statuses, limit, writes-limit)
	}
}

// TestSIGHUPReloadsPolicy grants a caller a new property in the policy file and sends SIGHUP
// to the gateway binary: the grant applies over HTTP. A broken file sent the same way keeps
// the grant in force, and the operational log says why the reload failed.
func TestSIGHUPReloadsPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	t.Parallel()
	sim, err := graphsim.Start(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	policyFor := func(properties string) string {
		return fmt.Sprintf("callers:\n  - name: reloaded\n    apiKeySha256: %s\n"+
			"    properties: [%s]\n", callers.HashAPIKey(testAPIKey), properties)
	}
	p := startProcess(t, sim, policyFor("displayName"), "LOG_LEVEL=info")
	client := &http.Client{Timeout: 10 * time.Second}
	health := func() writeResult {
		return patchBody(client, p.url, `{"tunnelServerHealthStatus":"warning"}`)
	}
	if r := health(); r.status != http.StatusForbidden {
		t.Fatalf("write of an ungranted property: got %d %v, want 403: %s", r.status, r.err, r.body)
	}

	steps := []struct {
		name   string
		policy string
		// logged is the operational log line the reload leaves.
		logged string
	}{
		{name: "new grant", policy: policyFor("displayName, tunnelServerHealthStatus"),
			logged: "caller policy reloaded"},
		{name: "broken file", policy: "callers:\n  - name: [unterminated\n",
			logged: "failed to reload caller policy; keeping the previous one"},
	}
	for _, step := range steps {
		must(t, os.WriteFile(p.policyPath, []byte(step.policy), 0o600))
		p.signal(t, syscall.SIGHUP)
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.stderr.String(),
			step.logged); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the log never said %q within 5s of SIGHUP:\n%s", step.name,
					step.logged, p.stderr.String())
			}
		}
		if r := health(); r.status != http.StatusOK {
			t.Errorf("%s: write of the newly granted property: got %d %v, want 200: %s",
				step.name, r.status, r.err, r.body)
		}
	}
	if log := p.stderr.String(); !strings.Contains(log, `"error":"`) ||
		strings.Count(log, steps[1].logged) != 1 {
		t.Errorf("the failed reload is logged once with its error, got:\n%s", log)
	}
}

// patchBody sends one PATCH with body to the harness's example server through the gateway.
func patchBody(client *http.Client, base, body string) writeResult {
	return sendPatch(client, base+v1Server(site, server), body)
}

// TestStreamAuditTrailWarns starts the gateway binary with its audit trail on standard output
// (a pipe, as in a container) and on a file: only the stream gets a warning, once, that its
// durability ends at the stream's reader.
func TestStreamAuditTrailWarns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	t.Parallel()
	const warning = "audit trail goes to a stream that cannot be fsynced"
	tests := []struct {
		name     string
		env      []string
		warnings int
	}{
		{name: "standard output, a pipe", env: []string{"GATEWAY_AUDIT_LOG=-"}, warnings: 1},
		{name: "file", warnings: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, err := graphsim.Start(graphsim.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sim.Close() })
			p := startProcess(t, sim, "", tt.env...)
			p.signal(t, syscall.SIGTERM)
			if code := p.waitExit(t, 10*time.Second); code != 0 {
				t.Errorf("exit code after SIGTERM: got %d, want 0", code)
			}
			if got := strings.Count(p.stderr.String(), warning); got != tt.warnings {
				t.Errorf("warnings %q: got %d, want %d; log:\n%s", warning, got, tt.warnings,
					p.stderr.String())
			}
		})
	}
}

// TestGCPercentDefault reads the collector's goal off the binary's /metrics: the gateway's own
// default when GOGC names none, the operator's value when it does.
func TestGCPercentDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	t.Parallel()
	const warning = "GOGC not understood"
	tests := []struct {
		name string
		env  []string
		want string
		warn bool
	}{
		{name: "GOGC not set", want: "80"},
		{name: "GOGC empty, as good as not set", env: []string{"GOGC="}, want: "80"},
		{name: "GOGC set", env: []string{"GOGC=150"}, want: "150"},
		// runtime/metrics gives "off" as the largest uint64.
		{name: "GOGC off", env: []string{"GOGC=off"}, want: "1.8446744073709552e+19"},
		{name: "GOGC mistyped: Go's 100, and a warning", env: []string{"GOGC=8o"}, want: "100",
			warn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, set := os.LookupEnv("GOGC"); set && tt.env == nil {
				t.Skip("GOGC is set in the test's own environment, which the binary inherits")
			}
			sim, err := graphsim.Start(graphsim.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sim.Close() })
			p := startProcess(t, sim, "", tt.env...)
			resp, err := http.Get(p.adminURL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			const series = "go_gc_gogc_percent "
			var got string
			for line := range strings.Lines(string(body)) {
				if value, ok := strings.CutPrefix(line, series); ok {
					got = strings.TrimSpace(value)
				}
			}
			if got != tt.want {
				t.Errorf("%s: got %q, want %q", series, got, tt.want)
			}
			if got := strings.Contains(p.stderr.String(), warning); got != tt.warn {
				t.Errorf("warning %q in the log: got %v, want %v; log:\n%s", warning, got,
					tt.warn, p.stderr.String())
			}
		})
	}
}
