package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"tunnelgateway/internal/app"
	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphsim"
)

// These tests prove how the gateway lives within Graph's limits, end to end over HTTP: the
// simulator's scaled-down throttling and faults on one side, the real Redis on the other.

// redisAddr is the Redis every test of the shared budget uses; each test keys its budget by
// a tenant of its own, so tests never share one.
const redisAddr = "127.0.0.1:6379"

// pacingSite is the one site of manyServers' seed.
const pacingSite = graphsim.DefaultSiteID

// manyServers seeds n servers in pacingSite, so that each write of a test can change a server
// of its own and the simulator's store shows which writes were applied.
func manyServers(n int) []graphsim.Site {
	site := graphsim.Site{ID: pacingSite, DisplayName: "Pacing site"}
	for i := range n {
		site.Servers = append(site.Servers, map[string]any{
			"id":                       serverN(i),
			"displayName":              "seeded",
			"tunnelServerHealthStatus": "healthy",
		})
	}
	return []graphsim.Site{site}
}

func serverN(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// writeResult is what one caller saw of one PATCH.
type writeResult struct {
	server  string
	name    string
	status  int // 0 when no answer came
	header  http.Header
	body    string
	err     error
	elapsed time.Duration
}

// patchName sends one PATCH renaming server to name through the gateway at base. It is safe
// to call from many goroutines.
func patchName(client *http.Client, base, server, name string) writeResult {
	r := sendPatch(client, base+v1Server(pacingSite, server), `{"displayName":"`+name+`"}`)
	r.server, r.name = server, name
	return r
}

// sendPatch sends one PATCH of body to url with the harness's API key and reads the answer.
func sendPatch(client *http.Client, url, body string) writeResult {
	var r writeResult
	start := time.Now()
	req, err := http.NewRequest(http.MethodPatch, url, strings.NewReader(body))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", testAPIKey)
	resp, err := client.Do(req)
	if err != nil {
		r.err, r.elapsed = err, time.Since(start)
		return r
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	r.status, r.header, r.body, r.err = resp.StatusCode, resp.Header, string(data), err
	r.elapsed = time.Since(start)
	return r
}

// burst sends one PATCH per server of servers, all at once, each through the gateway
// bases[i % len(bases)], and returns the results in the order of servers.
func burst(client *http.Client, bases []string, servers []string, prefix string) []writeResult {
	results := make([]writeResult, len(servers))
	var wg sync.WaitGroup
	for i, server := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = patchName(client, bases[i%len(bases)], server, prefix+strconv.Itoa(i))
		}()
	}
	wg.Wait()
	return results
}

// checkAllApplied fails unless every write got 200 and the simulator holds its value.
func checkAllApplied(t *testing.T, sim *graphsim.Simulator, results []writeResult) {
	t.Helper()
	for _, r := range results {
		if r.status != http.StatusOK {
			t.Errorf("write to %s: got %d %v, want 200: %s", r.server, r.status, r.err, r.body)
			continue
		}
		stored, _ := sim.Server(pacingSite, r.server)
		if got := stored["displayName"]; got != r.name {
			t.Errorf("server %s holds %v, want %q", r.server, got, r.name)
		}
	}
	if got, want := sim.Counters().PatchesApplied, int64(len(results)); got != want {
		t.Errorf("PATCHes the simulator applied: got %d, want %d", got, want)
	}
}

// simLog records the simulator's one line per request, with its time.
func simLog() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

// mostWritesInWindow is the largest number of PATCHes the simulator applied within any span
// of length window, from its request log. A line is written as the answer is sent, a moment
// after the throttling check, so the spans seen here are at most that moment off.
func mostWritesInWindow(logs *observer.ObservedLogs, window time.Duration) int {
	var times []time.Time
	for _, e := range logs.FilterMessage("request served").All() {
		fields := e.ContextMap()
		if fields["method"] == http.MethodPatch && fields["status"] == int64(http.StatusOK) {
			times = append(times, e.Time)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	most, first := 0, 0
	for last := range times {
		for times[last].Sub(times[first]) >= window {
			first++
		}
		most = max(most, last-first+1)
	}
	return most
}

// replica is a gateway started by startReplica, beside the harness's own.
type replica struct {
	gw        *app.Gateway
	url       string
	auditPath string
	registry  *prometheus.Registry
	// stop cancels the Serve context, as SIGTERM does, and returns what Serve returned.
	stop func() error
}

// startReplica starts one more gateway against sim with the harness's settings, then
// configure's. It stops when the test ends unless stop was called first.
func startReplica(t *testing.T, sim *graphsim.Simulator, configure func(*config.Config)) *replica {
	t.Helper()
	return startReplicaLogged(t, sim, configure, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
}

// startReplicaLogged is startReplica with the gateway's log going to logger; a test that
// leaves requests running past its end needs a logger that outlives it.
func startReplicaLogged(t *testing.T, sim *graphsim.Simulator, configure func(*config.Config),
	logger *zap.Logger) *replica {
	t.Helper()
	cfg := testConfig(t, sim, "")
	if configure != nil {
		configure(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("replica configuration: %v", err)
	}

	registry := prometheus.NewRegistry()
	gw, err := app.New(context.Background(), cfg, app.Options{
		Logger: logger, HTTPClient: sim.Client(), Registry: registry})
	if err != nil {
		t.Fatalf("start replica: %v", err)
	}
	api, admin := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, api, admin) }()

	var once sync.Once
	var serveErr error
	halt := func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(cfg.Requests.DrainTimeout + 10*time.Second):
				serveErr = fmt.Errorf("Serve did not return within the drain timeout and 10s")
			}
		})
		return serveErr
	}
	// A test that stops the replica itself judges what Serve returned.
	var stoppedByTest atomic.Bool
	stop := func() error {
		stoppedByTest.Store(true)
		return halt()
	}
	t.Cleanup(func() {
		if err := halt(); err != nil && !stoppedByTest.Load() {
			t.Errorf("replica stopped with: %v", err)
		}
	})
	return &replica{gw: gw, url: "http://" + api.Addr().String(),
		auditPath: cfg.Audit.Path, registry: registry, stop: stop}
}

// sharedBudget returns a configure function that keeps the write budget in the test Redis.
func sharedBudget(t *testing.T, limit int, window time.Duration) func(*config.Config) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("these tests need Redis at %s: %v", redisAddr, err)
	}
	return func(c *config.Config) {
		c.Budget.RedisAddr = redisAddr
		c.Budget.WriteLimit = limit
		c.Budget.WriteWindow = window
	}
}

// localBudget returns a configure function for an in-process budget; a queue of 0 keeps the
// default.
func localBudget(limit int, window time.Duration, queue int) func(*config.Config) {
	return func(c *config.Config) {
		c.Budget.WriteLimit = limit
		c.Budget.WriteWindow = window
		if queue > 0 {
			c.Budget.MaxQueue = queue
		}
	}
}

// chainConfig chains configure functions.
func chainConfig(fs ...func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		for _, f := range fs {
			f(c)
		}
	}
}

// The simulator's scaled-down limit, which the gateway's budget takes as it is, with no
// headroom: the budget dates each write by its answer, which comes after the simulator counted
// it, so neither the TLS handshakes of a burst's first window nor scheduling delays on a busy
// machine can bring two writes a budget window apart closer together at the simulator.
const (
	simWrites = 10
	simWindow = 2 * time.Second
)

func scaledLimits() graphsim.Limits {
	return graphsim.Limits{AppWrites: simWrites, TenantWrites: simWrites, Window: simWindow}
}

// TestBurstIsPaced sends three windows' worth of writes at once through one gateway: pacing
// holds them so that the simulator sends no 429, never sees more than its limit in a window,
// and every write is applied.
func TestBurstIsPaced(t *testing.T) {
	t.Parallel()
	logger, logs := simLog()
	const writes = 3 * simWrites
	s := startStack(t, stackOptions{
		sim:       graphsim.Options{Limits: scaledLimits(), Seed: manyServers(writes), Logger: logger},
		configure: localBudget(simWrites, simWindow, 0),
	})

	servers := make([]string, writes)
	for i := range servers {
		servers[i] = serverN(i)
	}
	start := time.Now()
	results := burst(s.client, []string{s.url}, servers, "paced-")
	elapsed := time.Since(start)

	checkAllApplied(t, s.sim, results)
	if got := s.sim.Counters().Throttled; got != 0 {
		t.Errorf("429s the simulator sent: got %d, want 0", got)
	}
	if got := mostWritesInWindow(logs, simWindow); got > simWrites {
		t.Errorf("most writes the simulator saw in %s: got %d, want at most %d",
			simWindow, got, simWrites)
	}
	// Three windows' worth cannot go faster than two windows: the burst was paced.
	if least := 2 * simWindow; elapsed < least {
		t.Errorf("burst took %s; pacing allows no less than %s", elapsed, least)
	}
}

// TestReplicasShareBudget runs two gateways against one simulator with their budget in Redis:
// together they stay within the limit one of them alone would keep.
func TestReplicasShareBudget(t *testing.T) {
	t.Parallel()
	logger, logs := simLog()
	const writes = 3 * simWrites
	shared := sharedBudget(t, simWrites, simWindow)
	s := startStack(t, stackOptions{
		sim: graphsim.Options{TenantID: uuid.NewString(), Limits: scaledLimits(),
			Seed: manyServers(writes), Logger: logger},
		configure: shared,
	})
	other := startReplica(t, s.sim, shared)

	servers := make([]string, writes)
	for i := range servers {
		servers[i] = serverN(i)
	}
	results := burst(s.client, []string{s.url, other.url}, servers, "shared-")

	checkAllApplied(t, s.sim, results)
	if got := s.sim.Counters().Throttled; got != 0 {
		t.Errorf("429s the simulator sent: got %d, want 0 (two budgets of %d would send %d "+
			"writes in the first window)", got, simWrites, 2*simWrites)
	}
	if got := mostWritesInWindow(logs, simWindow); got > simWrites {
		t.Errorf("most writes the simulator saw in %s: got %d, want at most %d",
			simWindow, got, simWrites)
	}
}

// TestGraphThrottleSlowsSharedBudget misconfigures the budget above Graph's limit: Graph's
// 429 to one replica holds the shared budget for its Retry-After, so the other replica's write
// waits instead of meeting a 429 of its own.
func TestGraphThrottleSlowsSharedBudget(t *testing.T) {
	t.Parallel()
	tenant := uuid.NewString()
	shared := sharedBudget(t, 10, 2*time.Second)
	s := startStack(t, stackOptions{
		sim: graphsim.Options{TenantID: tenant, Seed: manyServers(4),
			Limits: graphsim.Limits{AppWrites: 2, TenantWrites: 2, Window: 2 * time.Second}},
		configure: shared,
	})
	other := startReplica(t, s.sim, shared)

	for i := range 2 {
		if r := patchName(s.client, s.url, serverN(i), "early"); r.status != http.StatusOK {
			t.Fatalf("write %d: got %d %v: %s", i, r.status, r.err, r.body)
		}
	}
	throttled := make(chan writeResult, 1)
	go func() { throttled <- patchName(s.client, s.url, serverN(2), "throttled") }()
	waitForPenalty(t, tenant)

	held := patchName(s.client, other.url, serverN(3), "held")
	if held.status != http.StatusOK {
		t.Fatalf("write on the other replica: got %d %v: %s", held.status, held.err, held.body)
	}
	if r := <-throttled; r.status != http.StatusOK {
		t.Fatalf("throttled write: got %d %v, want 200 after a retry: %s", r.status, r.err, r.body)
	}
	if got, want := s.sim.Counters().Throttled, int64(1); got != want {
		t.Errorf("429s the simulator sent: got %d, want %d (the penalty holds both replicas)",
			got, want)
	}
	if held.elapsed < 500*time.Millisecond {
		t.Errorf("the other replica's write took %s; want it held by the penalty", held.elapsed)
	}
}

// waitForPenalty waits until the shared budget of tenant in Redis holds a penalty.
func waitForPenalty(t *testing.T, tenant string) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		keys, _, err := client.Scan(ctx, 0, "*"+tenant+"*penalty*", 100).Result()
		if err == nil && len(keys) > 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no penalty appeared in Redis for tenant %s: %v", tenant, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueueOverflow fills the budget and its queue: further writes get 429 at once with a
// Retry-After that tells the truth, since a write sent back then passes without waiting.
func TestQueueOverflow(t *testing.T) {
	t.Parallel()
	const limit, queue, window = 2, 2, 3 * time.Second
	s := startStack(t, stackOptions{
		sim:       graphsim.Options{Seed: manyServers(10)},
		configure: localBudget(limit, window, queue),
	})
	for i := range limit {
		if r := patchName(s.client, s.url, serverN(i), "first"); r.status != http.StatusOK {
			t.Fatalf("write %d: got %d %v: %s", i, r.status, r.err, r.body)
		}
	}

	servers := []string{serverN(2), serverN(3), serverN(4), serverN(5), serverN(6), serverN(7)}
	results := burst(s.client, []string{s.url}, servers, "overflow-")
	var queued, refused []writeResult
	for _, r := range results {
		switch r.status {
		case http.StatusOK:
			queued = append(queued, r)
		case http.StatusTooManyRequests:
			refused = append(refused, r)
		default:
			t.Errorf("write to %s: got %d %v, want 200 or 429: %s", r.server, r.status, r.err, r.body)
		}
	}
	if len(queued) != queue || len(refused) != len(servers)-queue {
		t.Fatalf("got %d queued and %d refused, want %d and %d",
			len(queued), len(refused), queue, len(servers)-queue)
	}

	// The refusals were immediate and say when to come back.
	var retryAfter int
	for _, r := range refused {
		if r.elapsed > window/2 {
			t.Errorf("refusal took %s; want it at once", r.elapsed)
		}
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 2*int(window/time.Second)+1 {
			t.Fatalf("Retry-After: got %q, want 1 to %d seconds",
				r.header.Get("Retry-After"), 2*int(window/time.Second)+1)
		}
		retryAfter = max(retryAfter, secs)
		if !strings.Contains(r.body, "write_budget") {
			t.Errorf("refusal body does not name the write budget: %s", r.body)
		}
	}

	// Coming back after Retry-After, a write passes without waiting for a window.
	time.Sleep(time.Duration(retryAfter) * time.Second)
	again := patchName(s.client, s.url, refused[0].server, "after-retry-after")
	if again.status != http.StatusOK {
		t.Fatalf("write after Retry-After: got %d %v: %s", again.status, again.err, again.body)
	}
	if again.elapsed > window/2 {
		t.Errorf("write after Retry-After took %s; the Retry-After was too short", again.elapsed)
	}
}

// TestDeadlineShorterThanWait checks that a write whose slot lies past the request's deadline
// gets 429 at once instead of waiting to time out.
func TestDeadlineShorterThanWait(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{
		sim: graphsim.Options{Seed: manyServers(2)},
		configure: chainConfig(localBudget(1, 20*time.Second, 0), func(c *config.Config) {
			c.Requests.Timeout = 4 * time.Second
			c.Requests.UpstreamTimeout = 3 * time.Second
		}),
	})
	if r := patchName(s.client, s.url, serverN(0), "first"); r.status != http.StatusOK {
		t.Fatalf("first write: got %d %v: %s", r.status, r.err, r.body)
	}

	r := patchName(s.client, s.url, serverN(1), "too-late")
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("write past the deadline: got %d %v, want 429: %s", r.status, r.err, r.body)
	}
	if r.elapsed > 2*time.Second {
		t.Errorf("answered after %s; want at once, before the 4s deadline", r.elapsed)
	}
	if secs, _ := strconv.Atoi(r.header.Get("Retry-After")); secs < 15 || secs > 21 {
		t.Errorf("Retry-After: got %q, want about 20 seconds", r.header.Get("Retry-After"))
	}
	if got, want := s.sim.Counters().PatchesApplied, int64(1); got != want {
		t.Errorf("PATCHes the simulator applied: got %d, want %d", got, want)
	}
}

// TestTransientGraphFailureRetried checks that Graph's 503 is retried within the request and
// the caller sees only the success; the audit trail counts both attempts.
func TestTransientGraphFailureRetried(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{sim: graphsim.Options{Seed: manyServers(1),
		Faults: graphsim.Faults{Sequence: []string{"503"}, Methods: []string{http.MethodPatch}}}})

	r := patchName(s.client, s.url, serverN(0), "after-503")
	if r.status != http.StatusOK {
		t.Fatalf("got %d %v, want 200: %s", r.status, r.err, r.body)
	}
	c := s.sim.Counters()
	route := graphsim.RouteServer
	if got503, got200 := c.Count(http.MethodPatch, route, 503), c.Count(http.MethodPatch, route,
		200); got503 != 1 || got200 != 1 {
		t.Errorf("PATCHes at the simulator: got %d×503 and %d×200, want one of each", got503, got200)
	}
	requestID := r.header.Get("X-Request-Id")
	complete := waitForStage(t, s.auditPath, requestID, audit.StageResponseComplete)
	if complete.Upstream == nil || complete.Upstream.Attempts != 2 {
		t.Errorf("audited upstream: got %+v, want 2 attempts", complete.Upstream)
	}
}

// waitForStage polls the audit file for the event of requestID at stage.
func waitForStage(t *testing.T, path, requestID string, stage audit.Stage) audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		events, err := audit.ReadEvents(path)
		for _, e := range events {
			if e.AuditID == requestID && e.Stage == stage {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for request %s in the audit file (err %v)", stage, requestID, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPersistentGraphFailureOpensBreaker makes Graph fail every write: the first failures are
// 502, then the breaker opens, answers 503 with Retry-After without calling Graph, and
// readiness turns false while liveness stays true.
func TestPersistentGraphFailureOpensBreaker(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{sim: graphsim.Options{Seed: manyServers(1),
		Faults: graphsim.Faults{ErrorRate: 1, ErrorStatus: 502, Methods: []string{http.MethodPatch}}}})
	if got := probeStatus(t, s.adminURL+"/readyz"); got != http.StatusOK {
		t.Fatalf("readiness before the failures: got %d, want 200", got)
	}

	// The breaker's default: five failed calls in a row.
	const failures = 5
	for i := range failures {
		r := patchName(s.client, s.url, serverN(0), "failing")
		if r.status != http.StatusBadGateway {
			t.Fatalf("write %d: got %d %v, want 502: %s", i, r.status, r.err, r.body)
		}
	}
	r := patchName(s.client, s.url, serverN(0), "refused")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("write with the breaker open: got %d %v, want 503: %s", r.status, r.err, r.body)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || secs > 30 {
		t.Errorf("Retry-After: got %q, want 1 to 30 seconds", r.header.Get("Retry-After"))
	}
	if !strings.Contains(r.body, "circuit_open") {
		t.Errorf("answer does not name the open breaker: %s", r.body)
	}
	if got := s.sim.Counters().FaultsInjected; got != failures {
		t.Errorf("PATCHes that reached the simulator: got %d, want %d", got, failures)
	}
	if got := probeStatus(t, s.adminURL+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("readiness with the breaker open: got %d, want 503", got)
	}
	if got := probeStatus(t, s.adminURL+"/healthz"); got != http.StatusOK {
		t.Errorf("liveness with the breaker open: got %d, want 200", got)
	}
}

func probeStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestCallerGoneCancelsWork sends a read and a write Graph is slow to answer and gives up on
// them: the gateway abandons its call to Graph at once instead of finishing the work for
// nobody. For the read the simulator sees its client leave; a write's body already sits in
// the simulator's socket, so the proof is the gateway's own audit trail, closed long before
// Graph would have answered.
func TestCallerGoneCancelsWork(t *testing.T) {
	t.Parallel()
	const latency = 6 * time.Second
	tests := []struct {
		name   string
		method string
		// abandoned reports whether the gateway has visibly given up the call.
		abandoned func(s *stack) bool
	}{
		{name: "read", method: http.MethodGet, abandoned: func(s *stack) bool {
			// The simulator counts a request whose client left with status 0.
			return s.sim.Counters().Count(http.MethodGet, graphsim.RouteServer, 0) > 0
		}},
		{name: "write", method: http.MethodPatch, abandoned: func(s *stack) bool {
			events, _ := audit.ReadEvents(s.auditPath)
			for _, e := range events {
				if e.Stage == audit.StageResponseComplete && e.ObjectRef != nil &&
					e.ObjectRef.ServerID == serverN(0) {
					return e.ResponseStatus.Code != http.StatusOK
				}
			}
			return false
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, stackOptions{sim: graphsim.Options{Seed: manyServers(1)}})
			if err := s.sim.SetFaults(graphsim.Faults{Latency: latency}); err != nil {
				t.Fatal(err)
			}

			impatient := &http.Client{Timeout: 500 * time.Millisecond}
			start := time.Now()
			var err error
			if tt.method == http.MethodPatch {
				err = patchName(impatient, s.url, serverN(0), "abandoned").err
			} else {
				req, _ := http.NewRequest(http.MethodGet, s.url+v1Server(pacingSite, serverN(0)), nil)
				req.Header.Set("X-Api-Key", testAPIKey)
				var resp *http.Response
				if resp, err = impatient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			if err == nil {
				t.Fatalf("got an answer from a %s-slow Graph within 500ms", latency)
			}

			for !tt.abandoned(s) {
				if time.Since(start) > latency-time.Second {
					t.Fatalf("the gateway's call to Graph was not abandoned within %s",
						latency-time.Second)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestDrainUnderLoad stops a gateway, as SIGTERM does, while callers keep writing: readiness
// turns false, writes in flight finish, every answer is a 200 or a clear error, and every write
// the simulator applied was answered and has its RequestReceived event in the audit trail.
func TestDrainUnderLoad(t *testing.T) {
	t.Parallel()
	const servers, callers = 120, 16
	sim, err := graphsim.Start(graphsim.Options{Seed: manyServers(servers),
		Limits: graphsim.Limits{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	gw := startReplica(t, sim, chainConfig(localBudget(20, time.Second, 0), func(c *config.Config) {
		c.Requests.DrainTimeout = 10 * time.Second
	}))

	// Callers write until the gateway stops answering, each write to a server of its own.
	client := &http.Client{Timeout: 20 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true}}
	var next, answered atomic.Int64
	results := make([]writeResult, servers)
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= servers {
					return
				}
				results[i] = patchName(client, gw.url, serverN(i), "drain-"+strconv.Itoa(i))
				if results[i].err != nil && results[i].status == 0 {
					return
				}
				answered.Add(1)
			}
		}()
	}

	// Stop under load: once some writes are through and more are waiting for the budget.
	for answered.Load() < 30 {
		time.Sleep(5 * time.Millisecond)
	}
	inFlight := metricValue(t, gw.registry, "tunnelgateway_requests_in_flight")
	stopped := make(chan error, 1)
	go func() { stopped <- gw.stop() }()
	if err := waitUnready(t, gw.gw); !strings.Contains(err.Error(), "draining") {
		t.Errorf("readiness while stopping: got %v, want it to say draining", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve after the drain: %v", err)
	}
	wg.Wait()
	if inFlight < 1 {
		t.Errorf("requests in flight when stopped: got %v, want some (the test needs load)", inFlight)
	}

	checkDrained(t, sim, gw.auditPath, results)
	if _, err := http.Get(gw.url + "/healthz"); err == nil {
		t.Error("the stopped gateway still accepts connections")
	}
}

// checkDrained checks nothing accepted was lost: answers are 200 or clear errors, and each
// write the simulator holds got its 200 and has its RequestReceived event.
func checkDrained(t *testing.T, sim *graphsim.Simulator, auditPath string, results []writeResult) {
	t.Helper()
	events, err := audit.ReadEvents(auditPath)
	if err != nil {
		t.Fatalf("read the audit trail: %v", err)
	}
	received := map[string]bool{} // server id + name of each RequestReceived event
	for _, e := range events {
		if e.Stage == audit.StageRequestReceived && e.ObjectRef != nil {
			received[e.ObjectRef.ServerID+" "+fmt.Sprint(e.RequestObject["displayName"])] = true
		}
	}

	ok := 0
	for i, r := range results {
		server := serverN(i)
		stored, _ := sim.Server(pacingSite, server)
		applied := r.name != "" && stored["displayName"] == r.name
		switch {
		case r.status == http.StatusOK:
			ok++
			if !applied {
				t.Errorf("write %d answered 200 but the simulator holds %v", i, stored["displayName"])
			}
		case r.status != 0 && !clearError(r):
			t.Errorf("write %d: got %d with an unclear body: %s", i, r.status, r.body)
		case applied:
			t.Errorf("write %d was applied but its caller got %d %v", i, r.status, r.err)
		}
		if applied && !received[server+" "+r.name] {
			t.Errorf("write %d was applied but has no RequestReceived event", i)
		}
	}
	if got := sim.Counters().PatchesApplied; got != int64(ok) {
		t.Errorf("PATCHes applied: got %d, want %d (one per 200)", got, ok)
	}
	if ok < 30 {
		t.Errorf("writes answered 200: got %d, want at least the 30 before the stop", ok)
	}
}

// clearError reports whether an error answer is a problem document naming its status.
func clearError(r writeResult) bool {
	var p struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
	}
	return json.Unmarshal([]byte(r.body), &p) == nil && p.Status == r.status && p.Title != ""
}

// waitUnready polls the gateway's readiness until it fails, and returns why.
func waitUnready(t *testing.T, gw *app.Gateway) error {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := gw.Ready(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatal("readiness stayed true for 5s after the stop")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
