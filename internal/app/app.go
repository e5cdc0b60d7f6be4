// Package app wires the gateway's parts from one validated configuration and runs its two
// listeners: the callers' API and the admin endpoints (metrics and probes). cmd/gateway calls
// it, and so do the end-to-end tests, which run the whole gateway against the simulator.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	tunnelgateway "tunnelgateway"
	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/handlers"
	"tunnelgateway/internal/metrics"
	"tunnelgateway/internal/policy"
	"tunnelgateway/internal/validation"
	"tunnelgateway/internal/writebudget"
)

// Options are the parts a caller of New may supply instead of the production defaults.
type Options struct {
	Logger *zap.Logger
	// HTTPClient carries requests to Graph, Entra ID and the callers' OIDC discovery.
	// Default: a client with timeouts that trusts the system roots (and SSL_CERT_FILE).
	HTTPClient *http.Client
	// Registry receives the metrics. Default: a new registry.
	Registry *prometheus.Registry
	// AuditSink replaces the sink the configuration names; tests use it to make the audit
	// trail fail on purpose.
	AuditSink audit.Sink
}

// Gateway is the wired service.
type Gateway struct {
	cfg      *config.Config
	log      *zap.Logger
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	audit    *audit.Log
	policy   *policy.Store
	graph    *graphclient.Client
	cred     *observedCredential
	budget   *writebudget.Budget
	redis    *redis.Client
	api      http.Handler
	draining atomic.Bool
	// handling counts requests inside the callers' handler, so a drain that ran out of time
	// can still wait for them to record their outcome before the audit trail closes.
	handling sync.WaitGroup
}

// New builds every part. It fails on anything that would make the gateway unsafe to serve
// (unreadable policy, unopenable audit trail, bad credential settings); a Graph token that
// cannot be had yet only keeps the gateway unready.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = defaultHTTPClient()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	g := &Gateway{cfg: cfg, log: opts.Logger, registry: opts.Registry}
	g.metrics = metrics.New(opts.Registry)

	steps := []func(context.Context, Options) error{
		g.openPolicy, g.openAudit, g.openBudget, g.openGraph,
	}
	for _, step := range steps {
		if err := step(ctx, opts); err != nil {
			g.closeParts(context.Background())
			return nil, err
		}
	}
	validator, err := validation.New()
	if err != nil {
		return nil, fmt.Errorf("build validator: %w", err)
	}
	auth, err := g.newAuthenticator(ctx, opts)
	if err != nil {
		g.closeParts(context.Background())
		return nil, err
	}
	trustedProxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		g.closeParts(context.Background())
		return nil, fmt.Errorf("read trusted proxies: %w", err)
	}

	g.api = handlers.New(handlers.Deps{
		Graph:          g.graph,
		Validator:      validator,
		Auth:           auth,
		Policy:         g.policy,
		Audit:          g.audit,
		Metrics:        g.metrics,
		Logger:         g.log,
		OpenAPI:        tunnelgateway.OpenAPI,
		MaxBodyBytes:   cfg.Requests.MaxBodyBytes,
		RequestTimeout: cfg.Requests.Timeout,
		TrustedProxies: trustedProxies,
	})
	g.checkToken(ctx)
	return g, nil
}

// defaultHTTPClient keeps a pool of connections to Graph: the standard transport keeps only two
// idle connections per host, and under load most requests then paid a new TLS handshake
// (measured: half the gateway's CPU). The cap stays far above what Graph's write limit lets
// through, and bounds memory when callers pile up.
func defaultHTTPClient() *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	transport.MaxConnsPerHost = 64
	transport.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Timeout: 30 * time.Second, Transport: transport}
}

func (g *Gateway) openPolicy(context.Context, Options) error {
	store, err := policy.Load(g.cfg.Callers.PolicyFile)
	if err != nil {
		return fmt.Errorf("load caller policy: %w", err)
	}
	g.policy = store
	return nil
}

func (g *Gateway) openAudit(_ context.Context, opts Options) error {
	observer := audit.WithObserver(g.metrics.AuditObserver())
	if opts.AuditSink != nil {
		g.audit = audit.New(opts.AuditSink, g.log, observer)
		return nil
	}
	log, err := audit.Open(audit.Config{
		Path:       g.cfg.Audit.Path,
		MaxSizeMB:  g.cfg.Audit.MaxSizeMB,
		MaxAgeDays: g.cfg.Audit.MaxAgeDays,
		MaxBackups: g.cfg.Audit.MaxBackups,
	}, g.log, observer)
	if err != nil {
		return fmt.Errorf("open audit trail: %w", err)
	}
	g.audit = log
	return nil
}

func (g *Gateway) openBudget(ctx context.Context, _ Options) error {
	bc := writebudget.Config{
		Limit:    g.cfg.Budget.WriteLimit,
		Window:   g.cfg.Budget.WriteWindow,
		MaxQueue: g.cfg.Budget.MaxQueue,
	}
	if addr := g.cfg.Budget.RedisAddr; addr != "" {
		g.redis = redis.NewClient(g.redisOptions())
		if err := g.redis.Ping(ctx).Err(); err != nil {
			// Not fatal: the budget fails closed per request and readiness reports it.
			g.log.Warn("failed to reach redis for the shared write budget",
				zap.String("redis_addr", addr), zap.Error(err))
		}
		bc.RedisClient = g.redis
		bc.Key = "tunnelgateway:writes:" + g.cfg.Graph.TenantID + ":" + g.cfg.Graph.ClientID
	}
	budget, err := writebudget.New(bc)
	if err != nil {
		return fmt.Errorf("build write budget: %w", err)
	}
	g.budget = budget
	return nil
}

func (g *Gateway) redisOptions() *redis.Options {
	b := g.cfg.Budget
	o := &redis.Options{Addr: b.RedisAddr, Username: b.RedisUsername, Password: b.RedisPassword}
	if b.RedisTLS {
		host, _, _ := net.SplitHostPort(b.RedisAddr)
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	return o
}

func (g *Gateway) openGraph(_ context.Context, opts Options) error {
	cred, err := graphclient.NewCredential(g.cfg.Graph, opts.HTTPClient)
	if err != nil {
		return fmt.Errorf("build graph credential (%s): %w", g.cfg.Graph.Credential(), err)
	}
	g.cred = &observedCredential{inner: cred, metrics: g.metrics}
	client, err := graphclient.New(graphclient.Options{
		BaseURL:      g.cfg.Graph.BaseURL,
		Scope:        g.cfg.Graph.Scope,
		Credential:   g.cred,
		HTTPClient:   opts.HTTPClient,
		TryTimeout:   g.cfg.Requests.UpstreamTimeout,
		MaxRetries:   retries(g.cfg.Requests.MaxRetries),
		MaxListPages: g.cfg.Requests.MaxListPages,
		Pacer:        pacer{budget: g.budget, log: g.log, wait: g.metrics.WriteBudgetWait},
		Observer:     g.metrics.UpstreamObserver(),

		BreakerFailures: g.cfg.Requests.BreakerFailures,
		BreakerCooldown: g.cfg.Requests.BreakerCooldown,
		OnBreakerChange: g.breakerChanged,
	})
	if err != nil {
		return fmt.Errorf("build graph client: %w", err)
	}
	g.graph = client
	return nil
}

// retries turns the configuration's count into the client's: there 0 means "the default".
func retries(configured int) int {
	if configured == 0 {
		return -1
	}
	return configured
}

func (g *Gateway) breakerChanged(open bool) {
	if open {
		g.log.Error("circuit breaker opened: graph keeps failing; answering 503 until a probe succeeds",
			zap.Float64("cooldown_seconds", g.cfg.Requests.BreakerCooldown.Seconds()))
		return
	}
	g.log.Info("circuit breaker closed: graph answers again")
}

func (g *Gateway) newAuthenticator(ctx context.Context, opts Options) (*callers.Authenticator, error) {
	auth, err := callers.New(ctx, callers.Config{
		TenantID:      g.cfg.Callers.TenantID,
		AuthorityHost: g.cfg.Callers.AuthorityHost,
		Audiences:     g.cfg.Callers.Audiences,
		RequiredRole:  g.cfg.Callers.RequiredRole,
		Leeway:        g.cfg.Callers.Leeway,
		HTTPClient:    opts.HTTPClient,
	}, g.policy, g.log)
	if err != nil {
		return nil, fmt.Errorf("set up caller authentication: %w", err)
	}
	return auth, nil
}

// checkToken gets a Graph token at start and says clearly when the permission a PATCH needs
// is missing. A failure is logged, not fatal: readiness stays false until a token comes.
func (g *Gateway) checkToken(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	info, err := graphclient.CheckToken(ctx, g.cred, g.cfg.Graph.Scope)
	if err != nil {
		g.log.Error("failed to acquire graph token; not ready until one is acquired",
			zap.String("credential", g.cfg.Graph.Credential()), zap.Error(err))
		return
	}
	if !info.HasWriteRole() {
		g.log.Error("graph token lacks the permission a tunnel server update needs; "+
			"every PATCH will fail until an admin grants it",
			zap.String("missing_role", graphclient.WriteRole), zap.Strings("roles", info.Roles))
		return
	}
	g.log.Info("graph token acquired", zap.Strings("roles", info.Roles),
		zap.Time("expires_on", info.ExpiresOn))
}

// tokenRetryInterval is how often a gateway without a Graph token asks for one again.
const tokenRetryInterval = 10 * time.Second

// retryToken asks for a Graph token again while the last attempt failed. Without it a gateway
// whose first attempt failed would stay unready for good: an unready pod gets no requests, and
// only requests would otherwise ask again.
func (g *Gateway) retryToken(ctx context.Context, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if g.cred.lastError() != nil {
				g.checkToken(ctx)
			}
		}
	}
}

// ReloadPolicy rereads the caller policy; a bad file keeps the policy in force.
func (g *Gateway) ReloadPolicy() error {
	if err := g.policy.Reload(); err != nil {
		g.log.Error("failed to reload caller policy; keeping the previous one", zap.Error(err))
		return err
	}
	g.log.Info("caller policy reloaded", zap.String("path", g.cfg.Callers.PolicyFile))
	return nil
}

// Handler is the callers' API.
func (g *Gateway) Handler() http.Handler { return g.api }

// Ready says why the gateway should not take traffic, or nil. It reads state only, so
// probes stay cheap.
func (g *Gateway) Ready() error {
	var errs []error
	if g.draining.Load() {
		errs = append(errs, errors.New("draining"))
	}
	if err := g.cred.lastError(); err != nil {
		errs = append(errs, fmt.Errorf("no graph token: %w", err))
	}
	if err := g.audit.Healthy(); err != nil {
		errs = append(errs, fmt.Errorf("audit trail failing: %w", err))
	}
	if g.graph.BreakerOpen() {
		errs = append(errs, errors.New("circuit breaker open: graph keeps failing"))
	}
	// Redis is left out on purpose: every replica shares it, so a Redis outage would take all
	// of them out of service at once, while reads still work and writes fail closed with 503.
	return errors.Join(errs...)
}

// AuditFlushTimeout bounds the audit trail's last flush and close after the drain. It has a
// budget of its own because the flush must run even when the drain used all its time, and
// what it flushes (the ResponseComplete events of the last answers) is small.
// terminationGracePeriodSeconds must cover the drain timeout plus this.
const AuditFlushTimeout = 5 * time.Second

// Serve runs both listeners until ctx ends, then drains: readiness turns false, writes still
// waiting for the write budget are answered 503 (never sent to Graph, they may go to another
// replica), listeners stop accepting, requests in flight get DrainTimeout to finish, and the
// audit trail is flushed within AuditFlushTimeout more. It returns nil after a clean drain.
func (g *Gateway) Serve(ctx context.Context, api, admin net.Listener) error {
	// ReadTimeout bounds a slow body (the handler answers 408); bodies are at most 64 KiB.
	tracked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.handling.Add(1)
		defer g.handling.Done()
		g.api.ServeHTTP(w, r)
	})
	apiServer := &http.Server{Handler: tracked, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: zap.NewStdLog(g.log)}
	adminServer := &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(g.log)}

	errc := make(chan error, 2)
	go func() { errc <- serve(apiServer, api) }()
	go g.retryToken(ctx, tokenRetryInterval)
	go func() { errc <- serve(adminServer, admin) }()
	g.log.Info("gateway serving", zap.String("addr", api.Addr().String()),
		zap.String("admin_addr", admin.Addr().String()))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	// A write waiting for its slot could otherwise hold the drain for the whole request
	// timeout, which is longer than the drain timeout by default.
	g.draining.Store(true)
	g.budget.Drain()
	g.log.Info("draining", zap.Float64("drain_timeout_seconds",
		g.cfg.Requests.DrainTimeout.Seconds()))
	drainCtx, cancel := context.WithTimeout(context.Background(), g.cfg.Requests.DrainTimeout)
	defer cancel()
	// The flush gets its own time: drainCtx may be spent, and a flush that never starts loses
	// the ResponseComplete events of answers already sent.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), AuditFlushTimeout)
	defer cancelFlush()
	if err := apiServer.Shutdown(drainCtx); err != nil {
		// Closing the connections cancels the requests still running (a write at Graph ends
		// as "may have been applied"); they record that before the trail closes.
		_ = apiServer.Close()
		g.log.Error("drain timed out; requests still in flight were cut off",
			zap.Float64("drain_timeout_seconds", g.cfg.Requests.DrainTimeout.Seconds()),
			zap.Error(err))
		serveErr = errors.Join(serveErr, fmt.Errorf("drain api listener: %w", err))
		g.waitForHandlers(flushCtx)
	}
	_ = adminServer.Shutdown(drainCtx)

	if err := g.closeParts(flushCtx); err != nil {
		g.log.Error("failed to flush the audit trail", zap.Error(err))
		serveErr = errors.Join(serveErr, err)
	}
	if serveErr == nil {
		g.log.Info("stopped: requests drained, audit trail flushed")
	}
	return serveErr
}

// waitForHandlers waits until no request is inside the callers' handler, or ctx ends.
func (g *Gateway) waitForHandlers(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		g.handling.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		g.log.Error("requests cut off by the drain did not finish before the audit flush")
	}
}

func serve(s *http.Server, l net.Listener) error {
	if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (g *Gateway) closeParts(ctx context.Context) error {
	var errs []error
	if g.audit != nil {
		if err := g.audit.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush audit trail: %w", err))
		}
	}
	if g.redis != nil {
		_ = g.redis.Close()
	}
	return errors.Join(errs...)
}

// observedCredential counts token acquisitions and remembers the last failure for readiness.
// azcore's bearer policy caches tokens, so GetToken runs only when a token is due.
type observedCredential struct {
	inner   azcore.TokenCredential
	metrics *metrics.Metrics
	lastErr atomic.Pointer[error]
}

func (o *observedCredential) lastError() error {
	if p := o.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}
