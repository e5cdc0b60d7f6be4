package graphclient_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/graphsim"
	"tunnelgateway/internal/writebudget"
)

// budgetPacer lets a real in-process write budget pace the client, as the gateway does.
type budgetPacer struct {
	budget *writebudget.Budget
	// penalized, when set, receives every penalty once the budget holds it.
	penalized chan time.Duration
}

func (p budgetPacer) Wait(ctx context.Context, maxFlight time.Duration) (func(), error) {
	slot, err := p.budget.WaitSlot(ctx, maxFlight)
	if err != nil {
		return nil, err
	}
	return func() { _ = slot.Answered(context.Background()) }, nil
}

func (p budgetPacer) Penalize(d time.Duration) {
	_ = p.budget.Penalize(context.Background(), max(d, time.Second))
	if p.penalized != nil {
		p.penalized <- d
	}
}

func newBudget(t *testing.T, limit int, window time.Duration) *writebudget.Budget {
	t.Helper()
	b, err := writebudget.New(writebudget.Config{Limit: limit, Window: window})
	if err != nil {
		t.Fatalf("build write budget: %v", err)
	}
	return b
}

// TestPacedWriteOutwaitsTryTimeout checks that the wait for a write slot counts against the
// caller's deadline, not against the timeout of one try: a write that waits two seconds for its
// slot still gets its whole try after the wait.
func TestPacedWriteOutwaitsTryTimeout(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	budget := newBudget(t, 1, 2*time.Second)
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.TryTimeout = time.Second
		o.Pacer = budgetPacer{budget: budget}
	}})
	// A first read gets the token, so that the one-second tries only carry the writes.
	if _, err := c.GetServer(testContext(t, 10*time.Second), siteID, serverID, newID()); err != nil {
		t.Fatalf("GetServer: %v", err)
	}

	ctx := testContext(t, 15*time.Second)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.PatchServer(ctx, siteID, serverID, patchBody("paced"), newID())
		}()
	}
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if got, want := countPatches(sim, http.StatusOK), int64(2); got != want {
		t.Errorf("PATCHes applied: got %d, want %d", got, want)
	}
	if got, want := budget.Stats().Granted, uint64(2); got != want {
		t.Errorf("slots granted: got %d, want %d", got, want)
	}
}

// TestPacedWriteDatedByAnswer checks that a write counts against the budget from its answer,
// not from its slot: Graph counts a write when it arrives, which a slow trip puts up to the
// answer. With one write per window, the second write's slot opens a paced window after the
// first write's answer, so it completes that window plus its own trip after the first, and
// not much later: the first write's answer freed its slot before its try timeout.
func TestPacedWriteDatedByAnswer(t *testing.T) {
	t.Parallel()
	const trip, window = 400 * time.Millisecond, time.Second
	sim := startSim(t, graphsim.Options{})
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.Pacer = budgetPacer{budget: newBudget(t, 1, window)}
	}})
	// A first read gets the token before Graph turns slow.
	ctx := testContext(t, 15*time.Second)
	if _, err := c.GetServer(ctx, siteID, serverID, newID()); err != nil {
		t.Fatalf("GetServer: %v", err)
	}
	if err := sim.SetFaults(graphsim.Faults{Latency: trip}); err != nil {
		t.Fatal(err)
	}

	var done [2]time.Time
	for i := range done {
		if _, err := c.PatchServer(ctx, siteID, serverID, patchBody("dated"), newID()); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		done[i] = time.Now()
	}

	// The budget's margin is 50ms at this window; the try timeout is 5s.
	least, most := window+50*time.Millisecond+trip, window+50*time.Millisecond+trip+time.Second
	if got := done[1].Sub(done[0]); got < least || got > most {
		t.Errorf("second write completed %s after the first, want between %s and %s", got,
			least, most)
	}
}

// TestPacerRefusalSendsNothing checks that a write the budget cannot fit before the caller's
// deadline is refused at once with the budget's error, and never reaches Graph.
func TestPacerRefusalSendsNothing(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.Pacer = budgetPacer{budget: newBudget(t, 1, 30*time.Second)}
	}})
	if _, err := c.PatchServer(testContext(t, 10*time.Second), siteID, serverID,
		patchBody("first"), newID()); err != nil {
		t.Fatalf("first PatchServer: %v", err)
	}

	start := time.Now()
	_, err := c.PatchServer(testContext(t, 5*time.Second), siteID, serverID,
		patchBody("refused"), newID())
	var te *writebudget.ThrottledError
	if !errors.As(err, &te) {
		t.Fatalf("error: got %v, want a *writebudget.ThrottledError", err)
	}
	var pe *graphclient.PacerError
	if !errors.As(err, &pe) {
		t.Errorf("error: got %T, want it wrapped in *graphclient.PacerError", err)
	}
	if te.RetryAfter < 20*time.Second {
		t.Errorf("RetryAfter: got %s, want about 30s", te.RetryAfter)
	}
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Errorf("refused after %s; want at once", elapsed)
	}
	if got, want := countPatches(sim, http.StatusOK), int64(1); got != want {
		t.Errorf("PATCHes at the simulator: got %d, want %d", got, want)
	}
	// Reads are not writes: the exhausted budget does not hold them.
	if _, err := c.GetServer(testContext(t, 5*time.Second), siteID, serverID, newID()); err != nil {
		t.Errorf("GetServer with the write budget exhausted: %v", err)
	}
}

// TestGraphThrottlePenalizesBudget checks that a 429 from Graph, despite the budget, holds
// the budget for Graph's Retry-After: a write that arrives meanwhile waits with the retry
// instead of meeting a 429 of its own.
func TestGraphThrottlePenalizesBudget(t *testing.T) {
	t.Parallel()
	// The simulator allows 2 writes per 2s; the budget, wrongly, 10.
	sim := startSim(t, graphsim.Options{
		Limits: graphsim.Limits{AppWrites: 2, TenantWrites: 2, Window: 2 * time.Second}})
	penalized := make(chan time.Duration, 4)
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.Pacer = budgetPacer{budget: newBudget(t, 10, 2*time.Second), penalized: penalized}
	}})
	ctx := testContext(t, 20*time.Second)
	for i := range 2 {
		if _, err := c.PatchServer(ctx, siteID, serverID, patchBody("early"), newID()); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}

	throttled := make(chan error, 1)
	go func() {
		_, err := c.PatchServer(ctx, siteID, serverID, patchBody("throttled"), newID())
		throttled <- err
	}()
	select {
	case d := <-penalized:
		if d < time.Second || d > 2*time.Second {
			t.Errorf("penalty: got %s, want Graph's Retry-After (1s to 2s)", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no penalty within 5s of the throttled write")
	}
	// Graph's window frees 2s after the first writes; the penalty holds this write until then.
	if _, err := c.PatchServer(ctx, siteID, serverID, patchBody("held"), newID()); err != nil {
		t.Fatalf("write during the penalty: %v", err)
	}
	if err := <-throttled; err != nil {
		t.Fatalf("throttled write: %v", err)
	}
	if got, want := sim.Counters().Throttled, int64(1); got != want {
		t.Errorf("429s the simulator sent: got %d, want %d (the penalty holds writes)", got, want)
	}
	if got, want := countPatches(sim, http.StatusOK), int64(4); got != want {
		t.Errorf("PATCHes applied: got %d, want %d", got, want)
	}
}

// drainAfterFirst lets the first write attempt go and refuses every later one as a draining
// budget does.
type drainAfterFirst struct{ waits *atomic.Int32 }

func (p drainAfterFirst) Wait(context.Context, time.Duration) (func(), error) {
	if p.waits.Add(1) > 1 {
		return nil, writebudget.ErrDraining
	}
	return func() {}, nil
}

func (drainAfterFirst) Penalize(time.Duration) {}

// TestRefusedRetryCountsAttemptsSent checks that a retry the budget refuses reports how many
// attempts did reach Graph, so the caller is not told the change was never sent.
func TestRefusedRetryCountsAttemptsSent(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{Faults: graphsim.Faults{
		Methods: []string{http.MethodPatch}, Sequence: []string{"503"}}})
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.Pacer = drainAfterFirst{waits: &atomic.Int32{}}
		o.RetryDelay = 10 * time.Millisecond
	}})
	_, err := c.PatchServer(testContext(t, 10*time.Second), siteID, serverID,
		patchBody("retried"), newID())
	var pe *graphclient.PacerError
	if !errors.As(err, &pe) || !errors.Is(err, writebudget.ErrDraining) {
		t.Fatalf("error: got %v, want a draining *graphclient.PacerError", err)
	}
	if pe.Sent != 1 {
		t.Errorf("Sent: got %d, want 1 (the first attempt reached Graph)", pe.Sent)
	}
}
