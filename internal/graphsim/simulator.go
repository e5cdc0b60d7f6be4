package graphsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultAddr         = "127.0.0.1:0"
	DefaultPageSize     = 100
	DefaultMaxBodyBytes = 4 << 20 // Graph's documented request size limit is 4 MB
)

// Options configures a Simulator. The zero value gives the documented defaults.
type Options struct {
	// Addr is the host:port of the one HTTPS listener. Default "127.0.0.1:0".
	Addr string
	// TenantID is the only tenant known. Default DefaultTenantID.
	TenantID string
	// Apps are the registered apps. Default DefaultApps().
	Apps []App
	// Seed is the initial store. Default DefaultSeed().
	Seed []Site
	// TokenLifetime is the lifetime of issued access tokens. Default 1h.
	TokenLifetime time.Duration
	// Limits are the throttling limits; zero fields take the Microsoft Tunnel defaults.
	Limits Limits
	// PageSize is the largest page of a list; $top may ask for less. Default 100.
	PageSize int
	// MaxBodyBytes bounds a PATCH body, before and after gzip decompression. Default 4 MiB.
	MaxBodyBytes int64
	// PatchNoContent answers a successful PATCH with 204 and no body instead of 200 + object.
	// Default false. This and the next two are the starting ResponseOptions; SetResponseOptions
	// switches them while running.
	PatchNoContent bool
	// IntuneErrors puts Intune's JSON document, as a string, in the message of errors raised by
	// the Intune service (403, 404, 429, 5xx). Default false.
	IntuneErrors bool
	// OmitRetryAfter answers 429 without a Retry-After header. Default false.
	OmitRetryAfter bool
	// Faults are the faults injected from the start; SetFaults changes them.
	Faults Faults
	// Logger receives one debug line per request. Default: no logging.
	Logger *zap.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.TenantID == "" {
		o.TenantID = DefaultTenantID
	}
	if len(o.Apps) == 0 {
		o.Apps = DefaultApps()
	}
	if len(o.Seed) == 0 {
		o.Seed = DefaultSeed()
	}
	if o.TokenLifetime == 0 {
		o.TokenLifetime = defaultTokenLifetime
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	o.Limits = o.Limits.withDefaults()
	var problems []error
	if o.TokenLifetime < time.Minute {
		problems = append(problems, fmt.Errorf("token lifetime %s: must be at least 1m", o.TokenLifetime))
	}
	if o.PageSize < 1 {
		problems = append(problems, fmt.Errorf("page size %d: must be positive", o.PageSize))
	}
	if o.MaxBodyBytes < 1 {
		problems = append(problems, fmt.Errorf("max body bytes %d: must be positive", o.MaxBodyBytes))
	}
	if err := o.Limits.validate(); err != nil {
		problems = append(problems, err)
	}
	if err := o.Faults.validate(); err != nil {
		problems = append(problems, err)
	}
	return o, errors.Join(problems...)
}

// Simulator is a running Graph + Entra ID simulator.
type Simulator struct {
	opts     Options
	log      *zap.Logger
	url      string
	server   *http.Server
	caPEM    []byte
	pool     *x509.CertPool
	client   *http.Client
	apps     map[string]App
	keys     *keyring
	saKeys   *keyring // signs the simulated Kubernetes cluster's service account tokens
	store    *store
	throttle *throttler
	faults   *faultInjector
	counters *counterSet
	// responses holds the answer forms; read them here, never from opts, which keeps only
	// their starting values.
	responses *responseSwitch

	stopping  chan struct{} // closed by Close so that stalled responses end
	closeOnce sync.Once
	served    chan error
}

// Start validates opts, listens on opts.Addr and serves HTTPS in the background.
func Start(opts Options) (*Simulator, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("graphsim options: %w", err)
	}
	s := &Simulator{opts: opts, log: opts.Logger, stopping: make(chan struct{}),
		served: make(chan error, 1), counters: newCounterSet()}
	if s.apps, err = indexApps(opts.Apps); err != nil {
		return nil, err
	}
	if s.store, err = newStore(opts.Seed); err != nil {
		return nil, err
	}
	if s.keys, err = newKeyring(); err != nil {
		return nil, err
	}
	if s.saKeys, err = newKeyring(); err != nil {
		return nil, err
	}
	s.throttle = newThrottler(opts.Limits)
	s.faults = newFaultInjector(opts.Faults)
	s.responses = newResponseSwitch(opts.responseOptions())

	// Listen first: the certificate and the URLs need the actual port.
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	host, _, _ := net.SplitHostPort(opts.Addr)
	cert, caPEM, err := selfSignedCert(host)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.setTransport(caPEM)
	s.url = "https://" + publicHostPort(host, ln.Addr())

	s.server = &http.Server{
		Handler: s.routes(),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert},
			MinVersion: tls.VersionTLS12},
		// HTTP/1.1 only, so that a connection reset can be injected by hijacking.
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	go func() { s.served <- s.server.ServeTLS(ln, "", "") }()
	return s, nil
}

// publicHostPort turns the listening address into the host:port clients dial: a wildcard
// listener is reached on 127.0.0.1, and a host name given in Addr is kept.
func publicHostPort(host string, addr net.Addr) string {
	tcp := addr.(*net.TCPAddr)
	port := fmt.Sprint(tcp.Port)
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		return net.JoinHostPort("127.0.0.1", port)
	case ip == nil:
		return net.JoinHostPort(host, port)
	default:
		return net.JoinHostPort(tcp.IP.String(), port)
	}
}

func (s *Simulator) setTransport(caPEM []byte) {
	s.caPEM = caPEM
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM(caPEM)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
	transport.MaxIdleConnsPerHost = 64
	s.client = &http.Client{Transport: transport, Timeout: time.Minute}
}

// URL is the simulator's base URL, "https://127.0.0.1:PORT".
func (s *Simulator) URL() string { return s.url }

// AuthorityHost is what azidentity takes as Cloud.ActiveDirectoryAuthorityHost.
func (s *Simulator) AuthorityHost() string { return s.url + "/" }

// TenantID is the simulated tenant.
func (s *Simulator) TenantID() string { return s.opts.TenantID }

// GraphBaseURL is the Graph beta base, URL() + "/beta".
func (s *Simulator) GraphBaseURL() string { return s.url + "/beta" }

// Issuer is the issuer of v2 tokens and of the OIDC discovery document.
func (s *Simulator) Issuer() string { return s.url + "/" + s.opts.TenantID + "/v2.0" }

// CACertPEM is the certificate (PEM) clients must trust.
func (s *Simulator) CACertPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CertPool holds the simulator's certificate.
func (s *Simulator) CertPool() *x509.CertPool { return s.pool.Clone() }

// Client trusts the simulator; it also serves as an azidentity/azcore transport.
func (s *Simulator) Client() *http.Client { return s.client }

// Server returns a copy of the stored server object, for assertions.
func (s *Simulator) Server(siteID, serverID string) (map[string]any, bool) {
	return s.store.server(siteID, serverID)
}

// SetFaults replaces the injected faults; an invalid value is rejected.
func (s *Simulator) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.faults.set(f)
	return nil
}

// SetLimits replaces the throttling limits (zero fields take defaults) and clears the windows.
func (s *Simulator) SetLimits(l Limits) error {
	l = l.withDefaults()
	if err := l.validate(); err != nil {
		return err
	}
	s.throttle.set(l)
	return nil
}

// Counters returns a snapshot of the counters.
func (s *Simulator) Counters() Counters { return s.counters.snapshot() }

// ResetCounters sets every counter to zero.
func (s *Simulator) ResetCounters() { s.counters.reset() }

// MintToken signs arbitrary claims, for negative tests.
func (s *Simulator) MintToken(claims map[string]any, opts MintOptions) (string, error) {
	return s.keys.mint(claims, opts)
}

// RotateSigningKey makes a new current signing key. The JWKS publishes the new and the
// previous key; tokens issued afterwards carry the new kid.
func (s *Simulator) RotateSigningKey() error {
	return s.keys.rotate()
}

// Close stops the listener, ends stalled responses, gives running handlers up to 2 s and then
// closes the remaining connections (clients may hold connections that never sent a request).
func (s *Simulator) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stopping)
		s.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if shutdownErr := s.server.Shutdown(ctx); shutdownErr != nil {
			_ = s.server.Close() // forced: the simulator holds no state worth draining
		}
		if serveErr := <-s.served; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
			err = fmt.Errorf("serve graphsim: %w", serveErr)
		}
	})
	return err
}

// tenantMatches reports whether a path tenant names the simulated tenant.
func (s *Simulator) tenantMatches(tenant string) bool {
	return strings.EqualFold(tenant, s.opts.TenantID)
}
