//go:build linux

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/demo"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/graphsim"
)

// exampleBody is the request body of the Graph page's example PATCH; repeating it is harmless.
var exampleBody = []byte(`{
  "@odata.type": "#microsoft.graph.microsoftTunnelServer",
  "displayName": "Display Name value",
  "tunnelServerHealthStatus": "healthy",
  "lastCheckinDateTime": "2017-01-01T00:02:46.0431416-08:00",
  "agentImageDigest": "Agent Image Digest value",
  "serverImageDigest": "Server Image Digest value"
}`)

// examplePath is the Graph route of the example server; both targets serve it.
var examplePath = "/beta/deviceManagement/microsoftTunnelSites/" + graphsim.DefaultSiteID +
	"/microsoftTunnelServers/" + graphsim.ExampleServerID

// writeLimit lifts the gateway's write budget out of the way (the most it accepts), so the
// runs measure the gateway's own cost rather than its pacing.
const writeLimit = 1_000_000

// bench is the simulator and what both targets need to reach it.
type bench struct {
	s          settings
	progress   io.Writer
	dir        string
	sim        *graphsim.Simulator
	apiKey     string
	token      string // a Graph token for the bare proxy; never printed
	gatewayBin string
	caPath     string
	policyPath string
	auditPath  string
}

func newBench(ctx context.Context, s settings, progress io.Writer) (*bench, error) {
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return nil, fmt.Errorf("make work directory: %w", err)
	}
	b := &bench{s: s, progress: progress, dir: dir,
		caPath:     filepath.Join(dir, "graphsim-ca.pem"),
		policyPath: filepath.Join(dir, "policy.yaml"),
		auditPath:  filepath.Join(cmp.Or(s.auditDir, dir), "audit.log")}

	steps := []func(context.Context) error{b.startSimulator, b.writeFiles, b.fetchToken,
		b.buildGateway}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

// startSimulator runs Graph and Entra ID in this process with throttling off and no faults or
// latency (the zero Faults).
func (b *bench) startSimulator(context.Context) error {
	sim, err := graphsim.Start(graphsim.Options{Limits: graphsim.Limits{Disabled: true}})
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	b.sim = sim
	b.logf("simulator at %s (no latency, no throttling); work directory %s", sim.URL(), b.dir)
	return nil
}

func (b *bench) writeFiles(context.Context) error {
	key, _, err := callers.GenerateAPIKey()
	if err != nil {
		return err
	}
	b.apiKey = key
	if err := os.WriteFile(b.caPath, b.sim.CACertPEM(), 0o600); err != nil {
		return fmt.Errorf("write simulator certificate: %w", err)
	}
	if err := os.WriteFile(b.policyPath, []byte(demo.Policy(key)), 0o600); err != nil {
		return fmt.Errorf("write caller policy: %w", err)
	}
	return nil
}

// fetchToken gets, once, the Graph token the bare proxy attaches: the same app, credential
// and scope as the gateway's, so the simulator does the same work for both.
func (b *bench) fetchToken(ctx context.Context) error {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return err
	}
	demo.Configure(cfg, b.sim)
	cred, err := graphclient.NewCredential(cfg.Graph, b.sim.Client())
	if err != nil {
		return fmt.Errorf("build graph credential: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, azpolicy.TokenRequestOptions{Scopes: []string{cfg.Graph.Scope}})
	if err != nil {
		return fmt.Errorf("get graph token for the bare proxy: %w", err)
	}
	b.token = tok.Token
	return nil
}

// buildGateway compiles cmd/gateway as deploy/Dockerfile does, unless -gateway-bin names a
// binary: the static binary maps fewer pages than a cgo build (no libc, no dynamic loader), and
// peak RSS counts every mapped page the process touched.
func (b *bench) buildGateway(ctx context.Context) error {
	if b.s.gatewayBin != "" {
		b.gatewayBin = b.s.gatewayBin
		return nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) ==
		os.DevNull {
		return errors.New("find the module: run loadbench inside the gateway's module, " +
			"or pass -gateway-bin")
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	b.gatewayBin = filepath.Join(b.dir, "gateway")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=",
		"-o", b.gatewayBin, "./cmd/gateway")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/gateway: %w\n%s", err, out)
	}
	b.logf("built %s", b.gatewayBin)
	return nil
}

// gatewayEnv configures the gateway binary entirely by environment, as a deployment would,
// against the standalone simulator. The durable file audit trail stays on.
func (b *bench) gatewayEnv(addr, adminAddr string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + b.dir,
		"GATEWAY_ADDR=" + addr,
		"GATEWAY_ADMIN_ADDR=" + adminAddr,
		"LOG_LEVEL=info",
		"GRAPH_BASE_URL=" + b.sim.GraphBaseURL(),
		"AZURE_AUTHORITY_HOST=" + b.sim.AuthorityHost(),
		"AZURE_DISABLE_INSTANCE_DISCOVERY=true",
		"AZURE_TENANT_ID=" + b.sim.TenantID(),
		"AZURE_CLIENT_ID=" + graphsim.DefaultClientID,
		"AZURE_CLIENT_SECRET=" + graphsim.DefaultClientSecret,
		"SSL_CERT_FILE=" + b.caPath,
		"GATEWAY_AUTH_AUDIENCES=" + graphsim.GatewayAppID + "," + graphsim.GatewayAppIDURI,
		"GATEWAY_POLICY_FILE=" + b.policyPath,
		"GATEWAY_AUDIT_LOG=" + b.auditPath,
		fmt.Sprintf("GATEWAY_WRITE_LIMIT=%d", writeLimit),
		"GATEWAY_DRAIN_TIMEOUT=5s",
	}
	return append(env, b.s.gatewayEnv...)
}

// startGateway runs the gateway binary and returns once /readyz answers 200.
func (b *bench) startGateway(ctx context.Context, n int) (*child, time.Duration, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, 0, err
	}
	adminAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.CommandContext(ctx, b.gatewayBin)
	cmd.Env = b.gatewayEnv(addr, adminAddr)
	c := &child{name: "gateway", baseURL: "http://" + addr, adminURL: "http://" + adminAddr,
		logPath: filepath.Join(b.dir, fmt.Sprintf("gateway-%d.log", n))}
	took, err := c.start(cmd, c.adminURL+"/readyz")
	return c, took, err
}

// startBareProxy runs this program again as the bare reverse proxy, handing it the token on
// standard input so that it appears in no argument list or environment.
func (b *bench) startBareProxy(ctx context.Context) (*child, time.Duration, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, 0, fmt.Errorf("find this program for the bare proxy: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, bareProxyCommand, "-addr", addr,
		"-upstream", b.sim.URL(), "-idle-conns", fmt.Sprint(b.s.bareIdleConns))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SSL_CERT_FILE=" + b.caPath}
	cmd.Stdin = strings.NewReader(b.token + "\n")
	c := &child{name: "bare proxy", baseURL: "http://" + addr, adminURL: "http://" + addr,
		logPath: filepath.Join(b.dir, "bare-proxy.log")}
	took, err := c.start(cmd, c.adminURL+bareReadyPath)
	return c, took, err
}

// gatewayDefaultGOGC is the collector goal cmd/gateway sets itself when GOGC names none
// (defaultGCPercent in cmd/gateway/run.go).
const gatewayDefaultGOGC = "80"

// gatewayGOGC is the collector goal the measured gateway runs with: the last GOGC of
// -gateway-env, or the gateway's own default.
func (b *bench) gatewayGOGC() string {
	gogc := ""
	for _, kv := range b.s.gatewayEnv {
		if v, ok := strings.CutPrefix(kv, "GOGC="); ok {
			gogc = v
		}
	}
	if gogc == "" {
		return gatewayDefaultGOGC
	}
	return gogc
}

// startFloor runs this program again as the floor server, with the gateway's collector goal so
// that the two compare: no upstream, no token.
func (b *bench) startFloor(ctx context.Context) (*child, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program for the floor server: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, floorCommand, "-addr", addr)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GOGC=" + b.gatewayGOGC()}
	c := &child{name: "floor server", baseURL: "http://" + addr, adminURL: "http://" + addr,
		logPath: filepath.Join(b.dir, "floor-server.log")}
	_, err = c.start(cmd, c.adminURL+bareReadyPath)
	return c, err
}

// target is the one PATCH both sides receive: same bytes, same headers. The bare proxy drops
// the API key and attaches its token; the gateway checks the key and attaches its own.
func (b *bench) target(c *child) vegeta.Target {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Api-Key", b.apiKey)
	return vegeta.Target{Method: http.MethodPatch, URL: c.baseURL + examplePath,
		Body: exampleBody, Header: h}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "loadbench: "+format+"\n", args...)
}

// close stops the simulator and removes the work directory unless -keep was given.
func (b *bench) close() {
	if b.sim != nil {
		_ = b.sim.Close()
	}
	if b.s.keep {
		b.logf("kept %s and %s", b.dir, b.auditPath)
		return
	}
	if b.s.auditDir != "" {
		// The audit file and its rotated backups (audit-<time>.log) live outside the work dir.
		backups, _ := filepath.Glob(filepath.Join(b.s.auditDir, "audit-*.log"))
		for _, f := range append(backups, b.auditPath) {
			_ = os.Remove(f)
		}
	}
	_ = os.RemoveAll(b.dir)
}
