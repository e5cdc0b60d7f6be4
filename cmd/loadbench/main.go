//go:build linux

// Command loadbench measures what the gateway costs on top of a bare reverse proxy. In one run
// it starts the Graph simulator with no latency and no throttling, a bare
// httputil.ReverseProxy and the gateway binary as child processes on loopback, drives the same
// PATCH at both with vegeta, and prints one table: throughput at saturation, latency at a fixed
// rate, peak memory with many connections, start-up time, and CPU and allocations per request,
// each against its target. Every load is bounded in count and time and stops by itself.
//
// It reads /proc for memory and CPU, so it runs on Linux only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == bareProxyCommand:
		err = serveBareProxy(ctx, os.Args[2:], os.Stdin)
	case len(os.Args) > 1 && os.Args[1] == floorCommand:
		err = serveFloor(ctx, os.Args[2:])
	default:
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// settings are the command-line flags; every load they describe is bounded.
type settings struct {
	gatewayBin        string
	warmup            time.Duration
	saturationFor     time.Duration
	saturationWorkers int
	rate              int
	rateFor           time.Duration
	connections       int
	connectionsFor    time.Duration
	starts            int
	bareIdleConns     int
	keep              bool
	auditDir          string
	gatewayEnv        envList
}

// envList collects repeated -gateway-env KEY=VALUE flags.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(kv string) error {
	if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", kv)
	}
	*e = append(*e, kv)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.gatewayBin, "gateway-bin", "",
		"gateway binary to measure (default: go build ./cmd/gateway into the work directory)")
	fs.DurationVar(&s.warmup, "warmup", 2*time.Second, "warm-up at saturation before measuring")
	fs.DurationVar(&s.saturationFor, "saturation-duration", defaultSaturationFor,
		"length of each saturation run")
	fs.IntVar(&s.saturationWorkers, "saturation-workers", 64,
		"concurrent requests (vegeta workers) of the saturation runs")
	fs.IntVar(&s.rate, "rate", 200, "requests per second of the fixed-rate latency runs")
	fs.DurationVar(&s.rateFor, "rate-duration", defaultRateFor,
		"length of each fixed-rate latency run")
	fs.IntVar(&s.connections, "connections", 1000,
		"concurrent connections, each with a request in flight, for the memory runs")
	fs.DurationVar(&s.connectionsFor, "connections-duration", defaultConnectionsFor,
		"length of each memory run")
	fs.IntVar(&s.starts, "starts", 5, "gateway start-ups timed (the median is reported)")
	fs.IntVar(&s.bareIdleConns, "bare-idle-conns", 256,
		"the bare proxy's idle upstream connections per host")
	fs.StringVar(&s.auditDir, "audit-dir", "", "directory of the gateway's audit file "+
		"(default: the work directory; a tmpfs here shows what fsync costs)")
	fs.Var(&s.gatewayEnv, "gateway-env", "extra KEY=VALUE for the gateway's environment, "+
		"for experiments such as GOGC or GOMEMLIMIT (repeatable; later wins)")
	fs.BoolVar(&s.keep, "keep", false, "keep the work directory (logs, audit trail) and print it")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return s, s.validate()
}

// Defaults of the runs whose length decides how far their figures can be trusted.
const (
	defaultSaturationFor  = 10 * time.Second
	defaultRateFor        = 15 * time.Second
	defaultConnectionsFor = 5 * time.Second
)

// shorterThanDefaults says whether any measured run is shorter than its default, which makes
// its percentiles and ratio rest on fewer requests than the figures in docs/benchmarks.md.
func (s settings) shorterThanDefaults() bool {
	return s.saturationFor < defaultSaturationFor || s.rateFor < defaultRateFor ||
		s.connectionsFor < defaultConnectionsFor
}

// validate reports every flag outside its bounds at once.
func (s settings) validate() error {
	var errs []error
	durations := []struct {
		name     string
		value    time.Duration
		min, max time.Duration
	}{
		{"-warmup", s.warmup, 0, 30 * time.Second},
		{"-saturation-duration", s.saturationFor, time.Second, time.Minute},
		{"-rate-duration", s.rateFor, time.Second, time.Minute},
		{"-connections-duration", s.connectionsFor, time.Second, time.Minute},
	}
	for _, d := range durations {
		if d.value < d.min || d.value > d.max {
			errs = append(errs, fmt.Errorf("%s=%s: must be between %s and %s",
				d.name, d.value, d.min, d.max))
		}
	}
	counts := []struct {
		name     string
		value    int
		min, max int
	}{
		{"-saturation-workers", s.saturationWorkers, 1, 1024},
		{"-rate", s.rate, 1, 5000},
		{"-connections", s.connections, 1, 5000},
		{"-starts", s.starts, 1, 20},
		{"-bare-idle-conns", s.bareIdleConns, 1, 10000},
	}
	for _, c := range counts {
		if c.value < c.min || c.value > c.max {
			errs = append(errs, fmt.Errorf("%s=%d: must be between %d and %d",
				c.name, c.value, c.min, c.max))
		}
	}
	return errors.Join(errs...)
}

// run sets the bench up, measures, prints the table and tears everything down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b, err := newBench(ctx, s, stderr)
	if err != nil {
		return err
	}
	defer b.close()

	res, err := b.measure(ctx)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted; nothing measured: %w", ctx.Err())
	}
	if err != nil {
		return err
	}
	printReport(stdout, s, b, res)
	return nil
}
