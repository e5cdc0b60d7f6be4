// Command throttlebench measures how a burst of tunnel-server updates fares against Graph's
// write limit: through one gateway, through two gateway replicas sharing a budget in Redis,
// and through a naive forwarder that retries as the Graph SDK does by default. It runs every
// part on loopback against the simulator with its limits scaled down, prints a Markdown table,
// and stops by itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "throttlebench:", err)
		os.Exit(1)
	}
}

// settings are the command-line flags.
type settings struct {
	writes   int
	callers  int
	limit    int
	window   time.Duration
	headroom time.Duration
	redis    string
	variants []string
	timeout  time.Duration
}

func parseFlags(args []string) (settings, error) {
	var s settings
	var variants string
	fs := flag.NewFlagSet("throttlebench", flag.ContinueOnError)
	fs.IntVar(&s.writes, "writes", 500, "updates in the burst, one server each")
	fs.IntVar(&s.callers, "callers", 50, "concurrent callers sending the burst")
	fs.IntVar(&s.limit, "limit", 100, "writes per window the simulator allows (and the budget)")
	fs.DurationVar(&s.window, "window", 2*time.Second, "the simulator's throttling window")
	fs.DurationVar(&s.headroom, "headroom", 0,
		"added to the gateways' budget window (GATEWAY_WRITE_WINDOW) above the simulator's")
	fs.StringVar(&s.redis, "redis", "127.0.0.1:6379", "Redis `host:port` the replicas share")
	fs.StringVar(&variants, "variants", "gateway,replicas,naive",
		"comma-separated variants to run: gateway, replicas, naive")
	fs.DurationVar(&s.timeout, "timeout", 3*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if s.variants, err = parseVariants(variants); err != nil {
		return settings{}, err
	}
	return s, s.validate()
}

func (s settings) validate() error {
	var problems []error
	if s.writes < 1 || s.writes > 100_000 {
		problems = append(problems, fmt.Errorf("-writes %d: must be between 1 and 100000", s.writes))
	}
	if s.callers < 1 || s.callers > 1000 {
		problems = append(problems, fmt.Errorf("-callers %d: must be between 1 and 1000", s.callers))
	}
	if s.limit < 1 {
		problems = append(problems, fmt.Errorf("-limit %d: must be at least 1", s.limit))
	}
	if s.window < time.Second {
		problems = append(problems, fmt.Errorf("-window %s: must be at least 1s", s.window))
	}
	if s.headroom < 0 {
		problems = append(problems, fmt.Errorf("-headroom %s: must not be negative", s.headroom))
	}
	if s.timeout <= 0 {
		problems = append(problems, fmt.Errorf("-timeout %s: must be positive", s.timeout))
	}
	return errors.Join(problems...)
}

func run(ctx context.Context, args []string, out io.Writer) error {
	s, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	fmt.Fprintln(out, machine())
	fmt.Fprintf(out, "burst: %d updates from %d callers; simulator limit %d writes per %s; "+
		"gateway budget %d per %s; minimum %s\n\n", s.writes, s.callers, s.limit, s.window,
		s.limit, s.window+s.headroom, minimum(s).Round(time.Millisecond))
	fmt.Fprintln(out, tableHeader)
	for _, name := range s.variants {
		r, err := runVariant(ctx, name, s)
		if err != nil {
			return fmt.Errorf("variant %s: %w", name, err)
		}
		fmt.Fprintln(out, r.row(minimum(s)))
	}
	return nil
}

// minimum is the shortest time the budget allows for the burst: the first limit writes go at
// once and each further group of limit writes one window after the group before, so the last
// group starts (ceil(writes/limit) - 1) windows after the first. One round trip is ignored.
func minimum(s settings) time.Duration {
	windows := (s.writes + s.limit - 1) / s.limit
	return time.Duration(windows-1) * s.window
}
