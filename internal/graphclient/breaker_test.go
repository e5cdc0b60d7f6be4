package graphclient_test

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/graphsim"
)

// breakerEvents records what the breaker says of its state.
type breakerEvents struct {
	mu     sync.Mutex
	states []bool
}

func (b *breakerEvents) record(open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.states = append(b.states, open)
}

func (b *breakerEvents) get() []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bool(nil), b.states...)
}

// TestBreakerOpensFailsFastAndCloses drives Graph into persistent 500s: after BreakerFailures
// failed calls the breaker opens and answers at once without calling Graph; after the
// cool-down one probe goes through, and a success closes it.
func TestBreakerOpensFailsFastAndCloses(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	const failures, cooldown = 3, 700 * time.Millisecond
	events := &breakerEvents{}
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.BreakerFailures = failures
		o.BreakerCooldown = cooldown
		o.OnBreakerChange = events.record
	}})
	setFaults(t, sim, graphsim.Faults{ErrorRate: 1, ErrorStatus: 500})
	ctx := testContext(t, 20*time.Second)

	for i := range failures {
		_, err := c.GetServer(ctx, siteID, serverID, newID())
		var ge *graphclient.GraphError
		if !errors.As(err, &ge) || ge.Status != http.StatusInternalServerError {
			t.Fatalf("call %d: got %v, want Graph's 500", i, err)
		}
	}
	if !c.BreakerOpen() {
		t.Fatalf("breaker closed after %d failures in a row; want open", failures)
	}

	// Open: refused at once, Graph not called.
	before := sim.Counters().FaultsInjected
	for i := range 3 {
		_, err := c.PatchServer(ctx, siteID, serverID, patchBody("refused"), newID())
		var open *graphclient.BreakerOpenError
		if !errors.As(err, &open) {
			t.Fatalf("call %d while open: got %v, want *BreakerOpenError", i, err)
		}
		if open.RetryAfter <= 0 || open.RetryAfter > cooldown+time.Second {
			t.Errorf("RetryAfter: got %s, want within (0, %s]", open.RetryAfter, cooldown+time.Second)
		}
	}
	if got := sim.Counters().FaultsInjected; got != before {
		t.Errorf("Graph requests while open: got %d, want 0", got-before)
	}

	// After the cool-down a probe goes through; Graph has recovered, so the breaker closes.
	setFaults(t, sim, graphsim.Faults{})
	time.Sleep(cooldown + 100*time.Millisecond)
	if _, err := c.GetServer(ctx, siteID, serverID, newID()); err != nil {
		t.Fatalf("probe after the cool-down: %v", err)
	}
	if c.BreakerOpen() {
		t.Error("breaker still open after a successful probe")
	}
	if _, err := c.PatchServer(ctx, siteID, serverID, patchBody("after"), newID()); err != nil {
		t.Errorf("write after the breaker closed: %v", err)
	}
	if got := events.get(); len(got) < 2 || !got[0] || got[len(got)-1] {
		t.Errorf("breaker state changes: got %v, want open first and closed last", got)
	}
}

// TestBreakerReopensOnFailedProbe checks that a probe meeting the same failure opens the
// breaker again for another cool-down.
func TestBreakerReopensOnFailedProbe(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	const cooldown = 500 * time.Millisecond
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.BreakerFailures = 2
		o.BreakerCooldown = cooldown
	}})
	setFaults(t, sim, graphsim.Faults{ErrorRate: 1, ErrorStatus: 502})
	ctx := testContext(t, 20*time.Second)
	for range 2 {
		_, _ = c.GetServer(ctx, siteID, serverID, newID())
	}
	if !c.BreakerOpen() {
		t.Fatal("breaker closed after 2 failures; want open")
	}

	time.Sleep(cooldown + 100*time.Millisecond)
	_, err := c.GetServer(ctx, siteID, serverID, newID())
	var ge *graphclient.GraphError
	if !errors.As(err, &ge) || ge.Status != http.StatusBadGateway {
		t.Fatalf("probe: got %v, want Graph's 502", err)
	}
	if !c.BreakerOpen() {
		t.Error("breaker closed after a failed probe; want open again")
	}
}

// TestBreakerIgnoresCallerErrors checks that answers about the request itself (400, 404) and
// throttling do not count as Graph failing.
func TestBreakerIgnoresCallerErrors(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.BreakerFailures = 2
		o.MaxRetries = -1
	}})
	ctx := testContext(t, 20*time.Second)
	const missing = "00000000-0000-4000-8000-000000000000"
	for i := range 4 {
		if _, err := c.GetServer(ctx, siteID, missing, newID()); err == nil {
			t.Fatalf("GET of a missing server %d: got success, want 404", i)
		}
		if _, err := c.PatchServer(ctx, siteID, serverID,
			[]byte(`{"tunnelServerHealthStatus":"sunny"}`), newID()); err == nil {
			t.Fatalf("invalid PATCH %d: got success, want 400", i)
		}
	}
	if c.BreakerOpen() {
		t.Error("breaker opened on the caller's own errors")
	}
}
