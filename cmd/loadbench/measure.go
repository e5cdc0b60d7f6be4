//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// side is what was measured of one target: the bare proxy or the gateway.
type side struct {
	saturation loadResult
	fixedRate  loadResult
	// open: -connections keep-alive connections open at once, -rate requests per second
	// over them; inFlight: -connections requests in flight at once, each on its own
	// connection. The peaks are VmHWM over each phase alone.
	open            openResult
	openSampled     sampler
	openPeakRSS     uint64
	inFlight        loadResult
	inFlightSampled sampler
	inFlightPeakRSS uint64
	// cpuPerRequest and allocsPerRequest come from the saturation run.
	cpuPerRequest    time.Duration
	allocsPerRequest float64
}

// measured is a running child and what is measured of it.
type measured struct {
	c *child
	r *side
}

type results struct {
	bare, gateway side
	// floor is the in-flight phase on a server that only holds each request (floor.go).
	floor         side
	gatewayStarts []time.Duration
	bareStart     time.Duration
	auditBytes    int64
	stopProblems  []error
}

// measure times the gateway's start-ups, then runs each phase on the bare proxy and then on
// the gateway, both running side by side against the one simulator.
func (b *bench) measure(ctx context.Context) (*results, error) {
	res := &results{}
	if err := b.timeStarts(ctx, res); err != nil {
		return nil, err
	}

	bare, took, err := b.startBareProxy(ctx)
	if err != nil {
		return nil, err
	}
	defer bare.stop()
	res.bareStart = took
	gw, _, err := b.startGateway(ctx, len(res.gatewayStarts))
	if err != nil {
		return nil, err
	}
	defer gw.stop()

	sides := []measured{{bare, &res.bare}, {gw, &res.gateway}}
	phases := []func(context.Context, *child, *side) error{
		b.warmUp, b.saturate, b.holdRate, b.holdOpen, b.holdInFlight,
	}
	for _, phase := range phases {
		for _, sd := range sides {
			if err := phase(ctx, sd.c, sd.r); err != nil {
				return nil, err
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("interrupted: %w", err)
			}
		}
	}

	// The floor runs last and alone: its phase is the in-flight one only.
	floor, err := b.startFloor(ctx)
	if err != nil {
		return nil, err
	}
	defer floor.stop()
	if err := b.holdInFlight(ctx, floor, &res.floor); err != nil {
		return nil, err
	}
	sides = append(sides, measured{floor, &res.floor})

	// Every child must still drain and exit cleanly after all that.
	for _, sd := range sides {
		if err := sd.c.stop(); err != nil {
			res.stopProblems = append(res.stopProblems, err)
		}
	}
	if info, err := os.Stat(b.auditPath); err == nil {
		res.auditBytes = info.Size()
	}
	return res, nil
}

// timeStarts spawns the gateway -starts times and measures spawn until /readyz says 200,
// which includes reading the policy, opening the audit trail, OIDC discovery and the first
// Graph token from the simulator.
func (b *bench) timeStarts(ctx context.Context, res *results) error {
	for i := range b.s.starts {
		c, took, err := b.startGateway(ctx, i)
		if err != nil {
			return err
		}
		res.gatewayStarts = append(res.gatewayStarts, took)
		if err := c.stop(); err != nil {
			return err
		}
	}
	b.logf("gateway start-up to ready: %v (median %v)", res.gatewayStarts,
		median(res.gatewayStarts))
	return nil
}

func (b *bench) saturationLoad(c *child, d time.Duration) load {
	return load{name: c.name, target: b.target(c), workers: b.s.saturationWorkers, d: d}
}

// warmUp fills connection pools and lets the runtime settle before anything is measured.
func (b *bench) warmUp(ctx context.Context, c *child, _ *side) error {
	if b.s.warmup == 0 {
		return nil
	}
	r := b.saturationLoad(c, b.s.warmup).run(ctx)
	return checkAnswers(c, "warm-up", r)
}

// saturate runs -saturation-workers concurrent requests as fast as they go, and reads the
// child's CPU time and allocation count around the run.
func (b *bench) saturate(ctx context.Context, c *child, r *side) error {
	scrapeCost, before, err := mallocsBaseline(c)
	if err != nil {
		return err
	}
	usageBefore, err := c.usage()
	if err != nil {
		return err
	}

	r.saturation = b.saturationLoad(c, b.s.saturationFor).run(ctx)

	usageAfter, err := c.usage()
	if err != nil {
		return err
	}
	after, err := c.mallocs()
	if err != nil {
		return err
	}
	if err := checkAnswers(c, "saturation", r.saturation); err != nil {
		return err
	}
	n := r.saturation.requests
	r.cpuPerRequest = (usageAfter.cpu - usageBefore.cpu) / time.Duration(n)
	r.allocsPerRequest = float64(after-before-scrapeCost) / float64(n)
	b.logf("%s at saturation: %.0f req/s, p50 %v, p99 %v", c.name, r.saturation.throughput,
		r.saturation.p50, r.saturation.p99)
	return nil
}

// mallocsBaseline reads the allocation count twice in a row: the difference is what one
// reading costs, to be taken off the run's count.
func mallocsBaseline(c *child) (cost, count uint64, err error) {
	first, err := c.mallocs()
	if err != nil {
		return 0, 0, err
	}
	second, err := c.mallocs()
	if err != nil {
		return 0, 0, err
	}
	return second - first, second, nil
}

// holdRate sends -rate requests per second for -rate-duration and records the latencies.
func (b *bench) holdRate(ctx context.Context, c *child, r *side) error {
	l := load{name: c.name, target: b.target(c), workers: 256,
		rate: vegeta.Rate{Freq: b.s.rate, Per: time.Second}, d: b.s.rateFor}
	r.fixedRate = l.run(ctx)
	if err := checkAnswers(c, "fixed rate", r.fixedRate); err != nil {
		return err
	}
	b.logf("%s at %d req/s: p50 %v, p99 %v", c.name, b.s.rate, r.fixedRate.p50,
		r.fixedRate.p99)
	return nil
}

// holdOpen opens -connections keep-alive connections, one caller each, and sends -rate
// requests per second over them, recording the child's memory and descriptors meanwhile.
func (b *bench) holdOpen(ctx context.Context, c *child, r *side) error {
	period := time.Duration(float64(b.s.connections) / float64(b.s.rate) * float64(time.Second))
	o := openConnections{target: b.target(c), n: b.s.connections, rate: b.s.rate,
		d: max(b.s.connectionsFor, period+time.Second)}
	if err := c.resetPeak(); err != nil {
		return err
	}
	r.openSampled = sampleDuring(c, func() { r.open = o.run(ctx) })
	peak, err := phasePeak(c, r.openSampled)
	if err != nil {
		return err
	}
	r.openPeakRSS = peak
	if r.open.ok == 0 {
		return fmt.Errorf("%s: no request succeeded over %d open connections: %v", c.name,
			b.s.connections, r.open.firstErr)
	}
	b.logf("%s with %d open connections at %d req/s: peak RSS %s, up to %d descriptors "+
		"(%d ok, %d failed)", c.name, b.s.connections, b.s.rate, mib(peak),
		r.openSampled.maxFDs, r.open.ok, r.open.failed)
	return nil
}

// holdInFlight keeps -connections requests in flight at once, each on its own connection:
// the worst case of as many callers all waiting on Graph together.
func (b *bench) holdInFlight(ctx context.Context, c *child, r *side) error {
	l := load{name: c.name, target: b.target(c), workers: b.s.connections, d: b.s.connectionsFor}
	if err := c.resetPeak(); err != nil {
		return err
	}
	r.inFlightSampled = sampleDuring(c, func() { r.inFlight = l.run(ctx) })
	peak, err := phasePeak(c, r.inFlightSampled)
	if err != nil {
		return err
	}
	r.inFlightPeakRSS = peak
	if err := checkAnswers(c, "in-flight", r.inFlight); err != nil {
		return err
	}
	b.logf("%s with %d requests in flight: %.0f req/s, peak RSS %s, up to %d descriptors (%s)",
		c.name, b.s.connections, r.inFlight.throughput, mib(peak), r.inFlightSampled.maxFDs,
		r.inFlight.statusText())
	return nil
}

// phasePeak is the child's VmHWM since its last reset, after a sampled phase.
func phasePeak(c *child, s sampler) (uint64, error) {
	if s.err != nil {
		return 0, s.err
	}
	u, err := c.usage()
	if err != nil {
		return 0, err
	}
	return max(u.peakRSS, s.maxRSS), nil
}

// checkAnswers refuses a run in which nothing succeeded: its numbers would measure errors.
func checkAnswers(c *child, phase string, r loadResult) error {
	if r.requests > 0 && r.success > 0 {
		return nil
	}
	detail := r.statusText()
	if len(r.errors) > 0 {
		detail += "; first error: " + r.errors[0]
	}
	return errors.Join(fmt.Errorf("%s %s run: no request succeeded (%s)", c.name, phase, detail),
		fmt.Errorf("its log ends with:\n%s", c.logTail(10)))
}
