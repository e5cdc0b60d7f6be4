package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphsim"
)

// TestDrainAnswersWritesWaitingForBudget stops a gateway while a write waits for the write
// budget far longer than the drain timeout: the write is answered 503 with Retry-After at
// once (it never reached Graph), Serve returns nil, and every answer has its ResponseComplete
// event on disk as soon as Serve returns.
func TestDrainAnswersWritesWaitingForBudget(t *testing.T) {
	t.Parallel()
	const drain = time.Second
	sim, err := graphsim.Start(graphsim.Options{Seed: manyServers(2),
		Limits: graphsim.Limits{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	// One write per 30s, so the second write's slot lies far past the drain timeout but
	// within its request timeout: it waits rather than being refused at once.
	gw := startReplica(t, sim, chainConfig(localBudget(1, 30*time.Second, 0),
		func(c *config.Config) {
			c.Requests.Timeout = 50 * time.Second
			c.Requests.DrainTimeout = drain
		}))
	client := &http.Client{Timeout: 20 * time.Second}

	first := patchName(client, gw.url, serverN(0), "first")
	if first.status != http.StatusOK {
		t.Fatalf("first write: got %d %v, want 200: %s", first.status, first.err, first.body)
	}
	waiting := make(chan writeResult, 1)
	var answeredAt time.Time
	go func() {
		r := patchName(client, gw.url, serverN(1), "waiting")
		answeredAt = time.Now()
		waiting <- r
	}()
	waitForEvents(t, gw.auditPath, func(events []audit.Event) bool {
		return hasStage(events, serverN(1), audit.StageRequestReceived)
	})

	stopped := time.Now()
	if err := gw.stop(); err != nil {
		t.Errorf("Serve after the drain: got %v, want nil", err)
	}
	// Read at once: the trail must be flushed by the time Serve returns.
	events, err := audit.ReadEvents(gw.auditPath)
	if err != nil {
		t.Fatalf("read the audit trail: %v", err)
	}

	r := <-waiting
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("write waiting for the budget: got %d %v, want 503: %s", r.status, r.err, r.body)
	}
	if got := answeredAt.Sub(stopped); got > drain {
		t.Errorf("write waiting for the budget answered %s after the stop, want within the "+
			"drain timeout %s", got, drain)
	}
	if got := r.header.Get("Retry-After"); got == "" {
		t.Error("503 for a write waiting at drain: no Retry-After")
	}
	if !strings.Contains(r.body, "draining") {
		t.Errorf("503 body does not say the gateway is draining: %s", r.body)
	}
	if got, want := sim.Counters().PatchesApplied, int64(1); got != want {
		t.Errorf("PATCHes the simulator applied: got %d, want %d", got, want)
	}
	for _, w := range []writeResult{first, r} {
		id := w.header.Get("X-Request-Id")
		done, ok := eventsFor(events, id)[audit.StageResponseComplete]
		if !ok {
			t.Errorf("answered %d to request %s but no ResponseComplete event on disk",
				w.status, id)
			continue
		}
		if done.ResponseStatus == nil || done.ResponseStatus.Code != w.status {
			t.Errorf("ResponseComplete of %s: status %+v, want %d", id, done.ResponseStatus,
				w.status)
		}
	}
}

// TestDrainFlushesAuditWhenTimeRunsOut stops a gateway while a write is at a Graph slower than
// the drain timeout. The drain fails and says so, but the audit trail is still flushed and
// closed in time of its own: the drain's spent deadline must not cancel the flush.
func TestDrainFlushesAuditWhenTimeRunsOut(t *testing.T) {
	t.Parallel()
	const latency = 3 * time.Second
	sim, err := graphsim.Start(graphsim.Options{Seed: manyServers(2),
		Limits: graphsim.Limits{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	// The slow write is still running when the test ends, so its logs must not go to t.
	gw := startReplicaLogged(t, sim, func(c *config.Config) {
		c.Requests.DrainTimeout = 300 * time.Millisecond
	}, zap.NewNop())
	client := &http.Client{Timeout: 20 * time.Second}

	first := patchName(client, gw.url, serverN(0), "first")
	if first.status != http.StatusOK {
		t.Fatalf("first write: got %d %v, want 200: %s", first.status, first.err, first.body)
	}
	if err := sim.SetFaults(graphsim.Faults{Latency: latency}); err != nil {
		t.Fatal(err)
	}
	slow := make(chan writeResult, 1)
	go func() { slow <- patchName(client, gw.url, serverN(1), "slow") }()
	waitForEvents(t, gw.auditPath, func(events []audit.Event) bool {
		return hasStage(events, serverN(1), audit.StageRequestReceived)
	})

	err = gw.stop()
	if err == nil || !strings.Contains(err.Error(), "drain api listener") {
		t.Errorf("Serve with a write still at Graph: got %v, want the drain's failure", err)
	}
	if err != nil && strings.Contains(err.Error(), "audit") {
		t.Errorf("Serve: got %v, want the audit trail flushed despite the spent drain", err)
	}
	events, err := audit.ReadEvents(gw.auditPath)
	if err != nil {
		t.Fatalf("read the audit trail: %v", err)
	}
	id := first.header.Get("X-Request-Id")
	if _, ok := eventsFor(events, id)[audit.StageResponseComplete]; !ok {
		t.Errorf("request %s was answered before the stop but has no ResponseComplete event", id)
	}

	// The write cut off at Graph gets no answer that reads as applied, and its outcome is on
	// the trail: the drain closed its connection and waited for it before the flush.
	if got := <-slow; got.err == nil && got.status == http.StatusOK {
		t.Errorf("the write cut off by the drain got 200; want its connection closed")
	}
	if !hasStage(events, serverN(1), audit.StageResponseComplete) {
		t.Error("the write cut off by the drain has no ResponseComplete event")
	}
}

// hasStage reports whether events hold one at stage for a write to server.
func hasStage(events []audit.Event, server string, stage audit.Stage) bool {
	for _, e := range events {
		if e.Stage == stage && e.ObjectRef != nil && e.ObjectRef.ServerID == server {
			return true
		}
	}
	return false
}
