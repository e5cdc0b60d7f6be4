// Command graphsim runs the Graph + Entra ID simulator as a standalone HTTPS server for scripts
// and benchmarks. It prints what a client needs to connect, then serves until SIGINT or SIGTERM.
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

	"go.uber.org/zap"

	"tunnelgateway/internal/graphsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "graphsim:", err)
		os.Exit(1)
	}
}

// settings are the command-line flags.
type settings struct {
	opts    graphsim.Options
	caOut   string
	seed    string
	verbose bool
}

func parseFlags(args []string) (settings, error) {
	var s settings
	var clientID, clientSecret string
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	fs.StringVar(&s.opts.Addr, "addr", "127.0.0.1:8443", "host:port of the HTTPS listener")
	fs.StringVar(&s.caOut, "ca-out", "", "write the certificate PEM clients must trust to `FILE`")
	fs.StringVar(&s.opts.TenantID, "tenant", graphsim.DefaultTenantID, "tenant id")
	fs.StringVar(&clientID, "client-id", graphsim.DefaultClientID, "the gateway app's client id")
	fs.StringVar(&clientSecret, "client-secret", graphsim.DefaultClientSecret,
		"the gateway app's client secret")
	fs.StringVar(&s.seed, "seed", "", "seed `FILE` (JSON array of sites); default: built-in seed")
	fs.IntVar(&s.opts.Limits.AppWrites, "app-writes", graphsim.DefaultAppWrites,
		"writes per app per tenant per window (negative: unlimited)")
	fs.IntVar(&s.opts.Limits.AppRequests, "app-requests", graphsim.DefaultAppRequests,
		"requests per app per tenant per window")
	fs.IntVar(&s.opts.Limits.TenantWrites, "tenant-writes", graphsim.DefaultTenantWrites,
		"writes per tenant per window")
	fs.IntVar(&s.opts.Limits.TenantRequests, "tenant-requests", graphsim.DefaultTenantRequests,
		"requests per tenant per window")
	fs.DurationVar(&s.opts.Limits.Window, "window", graphsim.DefaultWindow, "throttling window")
	fs.BoolVar(&s.opts.Limits.Disabled, "no-throttle", false, "disable throttling")
	fs.BoolVar(&s.opts.PatchNoContent, "patch-no-content", false, "answer PATCH with 204")
	fs.BoolVar(&s.opts.IntuneErrors, "intune-errors", false,
		"put Intune's JSON document in error messages")
	fs.BoolVar(&s.opts.OmitRetryAfter, "omit-retry-after", false, "send 429 without Retry-After")
	fs.DurationVar(&s.opts.TokenLifetime, "token-lifetime", time.Hour, "access token lifetime")
	fs.IntVar(&s.opts.PageSize, "page-size", graphsim.DefaultPageSize, "largest list page")
	fs.DurationVar(&s.opts.Faults.Latency, "latency", 0, "latency added to every Graph response")
	fs.BoolVar(&s.verbose, "verbose", false, "log every request to stderr")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	s.opts.Apps = gatewayApps(clientID, clientSecret)
	return s, nil
}

// gatewayApps is DefaultApps with the gateway app's credentials replaced.
func gatewayApps(clientID, secret string) []graphsim.App {
	apps := graphsim.DefaultApps()
	apps[0].ClientID, apps[0].Secret = clientID, secret
	return apps
}

func run(ctx context.Context, args []string, out io.Writer) error {
	s, err := parseFlags(args)
	if err != nil {
		return err
	}
	if s.seed != "" {
		if s.opts.Seed, err = graphsim.LoadSeed(s.seed); err != nil {
			return err
		}
	}
	if s.verbose {
		logger, err := zap.NewDevelopment()
		if err != nil {
			return fmt.Errorf("create logger: %w", err)
		}
		defer func() { _ = logger.Sync() }()
		s.opts.Logger = logger
	}

	sim, err := graphsim.Start(s.opts)
	if err != nil {
		return err
	}
	if s.caOut != "" {
		if err := os.WriteFile(s.caOut, sim.CACertPEM(), 0o644); err != nil {
			return errors.Join(fmt.Errorf("write ca file: %w", err), sim.Close())
		}
	}
	printConnection(out, sim, s)

	<-ctx.Done()
	fmt.Fprintln(out, "graphsim: shutting down")
	return sim.Close()
}

// printConnection tells a client how to reach the simulator. The secret is printed only when
// it is the built-in demo secret, never one passed on the command line.
func printConnection(out io.Writer, sim *graphsim.Simulator, s settings) {
	app := s.opts.Apps[0]
	secret := app.Secret
	if secret != graphsim.DefaultClientSecret {
		secret = "<the value given to -client-secret>"
	}
	caFile := s.caOut
	if caFile == "" {
		caFile = "<not written; pass -ca-out FILE>"
	}
	fmt.Fprintf(out, `graphsim listening
  authority host: %s
  tenant:         %s
  client id:      %s
  graph base URL: %s
  CA file:        %s
  admin API:      %s/_simulator
export AZURE_AUTHORITY_HOST=%s
export AZURE_TENANT_ID=%s
export AZURE_CLIENT_ID=%s
export AZURE_CLIENT_SECRET=%s
export AZURE_DISABLE_INSTANCE_DISCOVERY=true
export GRAPH_BASE_URL=%s
export SSL_CERT_FILE=%s
export GATEWAY_AUTH_AUDIENCES=%s,%s
`, sim.AuthorityHost(), sim.TenantID(), app.ClientID, sim.GraphBaseURL(), caFile, sim.URL(),
		sim.AuthorityHost(), sim.TenantID(), app.ClientID, secret, sim.GraphBaseURL(), caFile,
		graphsim.GatewayAppID, graphsim.GatewayAppIDURI)
}
