package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"tunnelgateway/internal/app"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/demo"
	"tunnelgateway/internal/graphsim"
)

// apiKey is the callers' key in every gateway of the run; it never leaves loopback.
const apiKey = "throttlebench-key-0123456789abcdef"

// The variants, as -variants names them.
const (
	variantGateway  = "gateway"
	variantReplicas = "replicas"
	variantNaive    = "naive"
)

func parseVariants(list string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(list, ",") {
		switch v = strings.TrimSpace(v); v {
		case variantGateway, variantReplicas, variantNaive:
			out = append(out, v)
		default:
			return nil, fmt.Errorf("-variants %q: %q is not gateway, replicas or naive", list, v)
		}
	}
	return out, nil
}

// runVariant starts a fresh simulator and the front ends of one variant, sends the burst and
// stops everything.
func runVariant(ctx context.Context, name string, s settings) (result, error) {
	sim, err := graphsim.Start(graphsim.Options{
		TenantID: uuid.NewString(), // a Redis key of its own for the replicas' budget
		Seed:     seedServers(s.writes),
		Limits:   graphsim.Limits{AppWrites: s.limit, TenantWrites: s.limit, Window: s.window},
	})
	if err != nil {
		return result{}, fmt.Errorf("start simulator: %w", err)
	}
	defer sim.Close()

	var targets []target
	switch name {
	case variantGateway, variantReplicas:
		replicas := 1
		if name == variantReplicas {
			replicas = 2
		}
		for range replicas {
			gw, err := startGateway(ctx, sim, s, name == variantReplicas)
			if err != nil {
				return result{}, err
			}
			defer gw.stop()
			targets = append(targets, target{base: gw.url, path: v1Path})
		}
	case variantNaive:
		fw, err := startForwarder(sim)
		if err != nil {
			return result{}, err
		}
		defer fw.stop()
		targets = append(targets, target{base: fw.url, path: graphPath})
	}

	r := sendBurst(ctx, targets, s)
	r.name = describe(name)
	r.simThrottled = sim.Counters().Throttled
	r.applied = countApplied(sim, s.writes)
	return r, nil
}

func describe(name string) string {
	switch name {
	case variantGateway:
		return "(a) one gateway"
	case variantReplicas:
		return "(b) two gateways, budget in Redis"
	}
	return "(c) naive forwarder, SDK retries"
}

// seedServers makes n servers in one site, one per update of the burst.
func seedServers(n int) []graphsim.Site {
	site := graphsim.Site{ID: graphsim.DefaultSiteID, DisplayName: "Benchmark site"}
	for i := range n {
		site.Servers = append(site.Servers, map[string]any{
			"id": serverID(i), "displayName": "seeded", "tunnelServerHealthStatus": "healthy",
		})
	}
	return []graphsim.Site{site}
}

func serverID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

func updateName(i int) string { return fmt.Sprintf("burst-%d", i) }

// countApplied counts the servers holding the name their update gave them.
func countApplied(sim *graphsim.Simulator, n int) int {
	applied := 0
	for i := range n {
		if stored, ok := sim.Server(graphsim.DefaultSiteID, serverID(i)); ok &&
			stored["displayName"] == updateName(i) {
			applied++
		}
	}
	return applied
}

// running is a server of the variant and how to stop it.
type running struct {
	url  string
	stop func()
}

// startGateway wires a gateway to sim with a budget equal to the simulator's limit, in Redis
// when shared, and serves it on loopback.
func startGateway(ctx context.Context, sim *graphsim.Simulator, s settings,
	shared bool) (*running, error) {
	dir, err := os.MkdirTemp("", "throttlebench-")
	if err != nil {
		return nil, err
	}
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(demo.Policy(apiKey)), 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return nil, err
	}
	demo.Configure(cfg, sim)
	cfg.Callers.PolicyFile = policyPath
	cfg.Audit.Path = filepath.Join(dir, "audit.log")
	cfg.Budget.WriteLimit, cfg.Budget.WriteWindow = s.limit, s.window+s.headroom
	cfg.Budget.MaxQueue = max(cfg.Budget.MaxQueue, s.writes)
	if shared {
		cfg.Budget.RedisAddr = s.redis
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway configuration: %w", err)
	}

	gw, err := app.New(ctx, cfg, app.Options{Logger: zap.NewNop(), HTTPClient: sim.Client()})
	if err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	if err := gw.Ready(); err != nil {
		return nil, fmt.Errorf("gateway not ready: %w", err)
	}
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		api.Close()
		return nil, err
	}
	serveCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(serveCtx, api, admin) }()
	return &running{url: "http://" + api.Addr().String(), stop: func() {
		cancel()
		<-done
		_ = os.RemoveAll(dir)
	}}, nil
}

// serve runs h on a loopback listener until stop.
func serve(h http.Handler) (*running, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &running{url: "http://" + l.Addr().String(), stop: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}}, nil
}
