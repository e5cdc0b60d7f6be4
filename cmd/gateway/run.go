package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"tunnelgateway/internal/app"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/demo"
	"tunnelgateway/internal/graphsim"
)

// defaultGCPercent is the collector's goal when GOGC names none: the heap may grow 80 % past
// what is live at each collection instead of Go's 100 %. With a thousand callers' connections
// open, most of what is live is net/http's per-connection buffers and stacks, and the peak
// resident set follows that growth: in loadbench's open-connections phase the peak was 58.9 to
// 62.1 MiB at Go's default and 56.5 to 58.6 MiB at 80 for the same binary, against a 64 MiB
// target (docs/benchmarks.md).
const defaultGCPercent = 80

// setGCPercent gives the collector the gateway's goal unless GOGC names one, which then wins
// as Go reads it. An empty GOGC names none, as for Go itself. Go takes any other value that is
// neither a whole number nor "off" as 100 without a word; the returned problem says so.
func setGCPercent(environ []string) (problem string) {
	gogc, _ := lookupEnv(environ, "GOGC")
	if gogc == "" {
		debug.SetGCPercent(defaultGCPercent)
		return ""
	}
	if _, err := strconv.Atoi(gogc); err != nil && gogc != "off" {
		return fmt.Sprintf("GOGC=%q is neither a whole number nor off; Go uses 100", gogc)
	}
	return ""
}

// run reads the configuration, wires the gateway and serves until ctx ends.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	// A value that does not parse is reported only after the flags are read, so that -h
	// answers even in a broken environment.
	cfg, envErr := config.FromEnv(environ)
	flags := flag.NewFlagSet("gateway", flag.ContinueOnError)
	isDemo := flags.Bool("demo", false, "run against an in-process Graph and Entra ID simulator")
	demoKey := flags.String("demo-api-key", "", "the demo's API key (default: a random one)")
	flags.StringVar(&cfg.Addr, "addr", cfg.Addr, "callers' listener, host:port (GATEWAY_ADDR)")
	flags.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr,
		"metrics and probes listener, host:port (GATEWAY_ADMIN_ADDR)")
	flags.StringVar(&cfg.Audit.Path, "audit-log", cfg.Audit.Path,
		`audit trail file, or "-" for standard output (GATEWAY_AUDIT_LOG)`)
	flags.StringVar(&cfg.Callers.PolicyFile, "policy", cfg.Callers.PolicyFile,
		"caller policy YAML file (GATEWAY_POLICY_FILE)")
	// The flag package's own output would put a requested help on standard error and a
	// mistake's usage before the error; both are written here instead.
	flags.SetOutput(io.Discard)
	err := flags.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return printUsage(stdout, flags)
	case err != nil:
		return fmt.Errorf("%w (gateway -h lists the flags)", err)
	case flags.NArg() > 0:
		return fmt.Errorf("unexpected arguments: %v (gateway -h lists the flags)", flags.Args())
	case envErr != nil:
		return envErr
	}

	var httpClient *http.Client
	var d *demo.Demo
	if *isDemo {
		if d, err = startDemo(cfg, *demoKey, environ); err != nil {
			return err
		}
		defer d.Close()
		httpClient = d.HTTPClient()
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration is incomplete or wrong:\n%w", err)
	}

	logger, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	if problem := setGCPercent(environ); problem != "" {
		logger.Warn("GOGC not understood", zap.String("problem", problem))
	}
	defer func() { _ = logger.Sync() }()
	return serve(ctx, cfg, app.Options{Logger: logger, HTTPClient: httpClient}, d, stderr)
}

// printUsage answers -h: the flags, and where the settings that are not flags are described.
func printUsage(w io.Writer, flags *flag.FlagSet) error {
	names, err := config.EnvNames()
	if err != nil {
		return fmt.Errorf("list environment variables: %w", err)
	}
	fmt.Fprint(w, `Usage: gateway [flags]

Serves the Microsoft Tunnel server update gateway in front of Microsoft Graph. It is
configured by environment variables; the table under "Configuration" in README.md gives
each one's default and meaning. The flags override the variables named beside them.

Flags:
`)
	flags.SetOutput(w)
	flags.PrintDefaults()
	fmt.Fprintln(w, "\nEnvironment variables read:")
	line := " "
	for _, name := range names {
		if len(line)+1+len(name) > 80 {
			fmt.Fprintln(w, line)
			line = " "
		}
		line += " " + name
	}
	fmt.Fprintln(w, line)
	return nil
}

// serve runs the gateway. The demo's banner goes to stderr, beside the operational log:
// stdout may be the audit trail, which must hold nothing but audit events.
func serve(ctx context.Context, cfg *config.Config, opts app.Options, d *demo.Demo,
	stderr io.Writer) error {
	gw, err := app.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	api, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on GATEWAY_ADDR %s: %w", cfg.Addr, err)
	}
	admin, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		_ = api.Close()
		return fmt.Errorf("listen on GATEWAY_ADMIN_ADDR %s: %w", cfg.AdminAddr, err)
	}
	if d != nil {
		printDemo(stderr, d, api.Addr().String(), admin.Addr().String())
	}

	// SIGHUP rereads the caller policy; a bad file keeps the old one (ReloadPolicy logs why).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			_ = gw.ReloadPolicy()
		}
	}()
	return gw.Serve(ctx, api, admin)
}

// startDemo starts the simulator and points cfg at it. Unless the environment names them,
// the demo listens on loopback only.
func startDemo(cfg *config.Config, apiKey string, environ []string) (*demo.Demo, error) {
	if !setIn(environ, "GATEWAY_ADDR") && cfg.Addr == ":8080" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if !setIn(environ, "GATEWAY_ADMIN_ADDR") && cfg.AdminAddr == ":9090" {
		cfg.AdminAddr = "127.0.0.1:9090"
	}
	return demo.Start(cfg, apiKey)
}

// lookupEnv is name's value in environ and whether it is there at all; the last one wins, as
// for exec.
func lookupEnv(environ []string, name string) (value string, set bool) {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			value, set = v, true
		}
	}
	return value, set
}

func setIn(environ []string, name string) bool {
	_, set := lookupEnv(environ, name)
	return set
}

func printDemo(w io.Writer, d *demo.Demo, addr, adminAddr string) {
	fmt.Fprintf(w, `Tunnel server gateway demo: Graph and Entra ID are simulated at %s
Demo API key: %s

Rename the Graph page's example server:
  curl -sS -X PATCH http://%s/v1/tunnel-sites/%s/servers/%s \
    -H 'X-Api-Key: %s' -H 'Content-Type: application/json' \
    -d '{"displayName":"tunnel-eu-west-01"}'

List the sites:    curl -sS -H 'X-Api-Key: %s' http://%s/v1/tunnel-sites
Metrics, probes:   http://%s/metrics  /healthz  /readyz
Stop with Ctrl-C.
`, d.Sim.URL(), d.APIKey, addr, graphsim.DefaultSiteID, graphsim.ExampleServerID, d.APIKey,
		d.APIKey, addr, adminAddr)
}

// newLogger builds the operational log at level, which Config.Validate has already checked.
func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL=%q: %w", level, err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}
