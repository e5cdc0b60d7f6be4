// Package config holds the gateway's one configuration struct, read from the environment
// (azidentity's AZURE_* names for the Graph credential, GATEWAY_* for the rest) and from a few
// command-line flags, and validated once at start-up with every problem reported together.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is everything the gateway reads at start-up. Each field's comment states its default.
type Config struct {
	// Addr is the callers' listener. Default ":8080".
	Addr string `env:"GATEWAY_ADDR" envDefault:":8080"`
	// AdminAddr serves /metrics, /healthz and /readyz; callers' routes are never on it.
	// Default ":9090".
	AdminAddr string `env:"GATEWAY_ADMIN_ADDR" envDefault:":9090"`
	// LogLevel is the operational log's level: debug, info, warn or error. Default "info".
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// TrustedProxies are the networks (CIDRs, comma-separated) of the reverse proxies in
	// front of the gateway: only from a peer in one of them is X-Forwarded-For recorded in
	// the audit trail's sourceIPs. Default: none, so the header is never believed.
	TrustedProxies []string `env:"GATEWAY_TRUSTED_PROXIES" envSeparator:","`

	Graph    GraphConfig
	Callers  CallersConfig
	Audit    AuditConfig
	Budget   BudgetConfig
	Requests RequestConfig
}

// GraphConfig says where Graph is and how the gateway proves who it is there.
type GraphConfig struct {
	// BaseURL is Graph's versioned root. Default "https://graph.microsoft.com/beta"; national
	// clouds use their own host (for example https://graph.microsoft.us/beta).
	BaseURL string `env:"GRAPH_BASE_URL" envDefault:"https://graph.microsoft.com/beta"`
	// Scope is the token scope for Graph. Default "https://graph.microsoft.com/.default".
	Scope string `env:"GRAPH_SCOPE" envDefault:"https://graph.microsoft.com/.default"`

	// TenantID and ClientID name the gateway's app registration. No default.
	TenantID string `env:"AZURE_TENANT_ID"`
	ClientID string `env:"AZURE_CLIENT_ID"`
	// ClientSecret selects the client secret credential. No default.
	ClientSecret string `env:"AZURE_CLIENT_SECRET"`
	// CertificatePath (PEM or PKCS#12, with its key) selects the certificate credential.
	CertificatePath     string `env:"AZURE_CLIENT_CERTIFICATE_PATH"`
	CertificatePassword string `env:"AZURE_CLIENT_CERTIFICATE_PASSWORD"`
	// FederatedTokenFile selects workload identity (set by the AKS webhook).
	FederatedTokenFile string `env:"AZURE_FEDERATED_TOKEN_FILE"`
	// ManagedIdentity selects managed identity; ClientID then picks a user-assigned one.
	// Default false.
	ManagedIdentity bool `env:"GATEWAY_USE_MANAGED_IDENTITY" envDefault:"false"`
	// AuthorityHost is the Entra ID authority. Default "https://login.microsoftonline.com/".
	AuthorityHost string `env:"AZURE_AUTHORITY_HOST" envDefault:"https://login.microsoftonline.com/"`
	// DisableInstanceDiscovery skips Entra's instance metadata request, for private
	// authorities. Default false.
	DisableInstanceDiscovery bool `env:"AZURE_DISABLE_INSTANCE_DISCOVERY" envDefault:"false"`
}

// CallersConfig says how callers prove who they are and what each may do.
type CallersConfig struct {
	// PolicyFile is the YAML file of callers and their grants. Required.
	PolicyFile string `env:"GATEWAY_POLICY_FILE"`
	// TenantID is the tenant whose tokens callers present. Default: AZURE_TENANT_ID.
	// Leave both empty to accept API keys only.
	TenantID string `env:"GATEWAY_AUTH_TENANT_ID"`
	// AuthorityHost is where the tenant's OIDC discovery lives. Default: AZURE_AUTHORITY_HOST.
	AuthorityHost string `env:"GATEWAY_AUTH_AUTHORITY_HOST"`
	// Audiences are the gateway's own app id and App ID URI, comma-separated. Required
	// when Entra tokens are accepted.
	Audiences []string `env:"GATEWAY_AUTH_AUDIENCES" envSeparator:","`
	// RequiredRole is the app role a caller's token must carry. Default "TunnelServers.Write".
	RequiredRole string `env:"GATEWAY_AUTH_REQUIRED_ROLE" envDefault:"TunnelServers.Write"`
	// Leeway is the clock skew allowed on exp and nbf. Default 1m.
	Leeway time.Duration `env:"GATEWAY_AUTH_LEEWAY" envDefault:"1m"`
}

// AuditConfig places the audit trail.
type AuditConfig struct {
	// Path is the audit log file, or "-" for standard output. Default "-".
	Path string `env:"GATEWAY_AUDIT_LOG" envDefault:"-"`
	// MaxSizeMB rotates the file when it grows past this size; 0 means lumberjack's own 100.
	// Default 100.
	MaxSizeMB int `env:"GATEWAY_AUDIT_MAX_SIZE_MB" envDefault:"100"`
	// MaxAgeDays removes rotated files older than this; 0 keeps them whatever their age.
	// Default 30.
	MaxAgeDays int `env:"GATEWAY_AUDIT_MAX_AGE_DAYS" envDefault:"30"`
	// MaxBackups keeps at most this many rotated files; 0 keeps them all. Default 10.
	MaxBackups int `env:"GATEWAY_AUDIT_MAX_BACKUPS" envDefault:"10"`
}

// BudgetConfig paces writes under Graph's Microsoft Tunnel limits.
type BudgetConfig struct {
	// WriteLimit writes are allowed per WriteWindow. Default 100 in 20s, Graph's per-app limit.
	WriteLimit  int           `env:"GATEWAY_WRITE_LIMIT" envDefault:"100"`
	WriteWindow time.Duration `env:"GATEWAY_WRITE_WINDOW" envDefault:"20s"`
	// MaxQueue callers may wait for a write slot at once; more get 429. Default 1000.
	MaxQueue int `env:"GATEWAY_WRITE_QUEUE" envDefault:"1000"`
	// RedisAddr shares the budget between replicas (host:port). Default: none, in-process.
	RedisAddr string `env:"GATEWAY_REDIS_ADDR"`
	// RedisUsername and RedisPassword authenticate to Redis (ACL user, or the access key of
	// Azure Cache for Redis as the password). Default: none.
	RedisUsername string `env:"GATEWAY_REDIS_USERNAME"`
	RedisPassword string `env:"GATEWAY_REDIS_PASSWORD"`
	// RedisTLS speaks TLS to Redis, verifying its certificate against the system roots.
	// Default false.
	RedisTLS bool `env:"GATEWAY_REDIS_TLS" envDefault:"false"`
}

// RequestConfig bounds each request.
type RequestConfig struct {
	// Timeout is the end-to-end deadline of one request, retries included. Default 60s.
	Timeout time.Duration `env:"GATEWAY_REQUEST_TIMEOUT" envDefault:"60s"`
	// UpstreamTimeout bounds one attempt at Graph. Default 30s.
	UpstreamTimeout time.Duration `env:"GATEWAY_UPSTREAM_TIMEOUT" envDefault:"30s"`
	// MaxRetries is how many times one Graph call is retried. Default 3.
	MaxRetries int `env:"GATEWAY_MAX_RETRIES" envDefault:"3"`
	// MaxBodyBytes bounds a request body, before and after gzip decoding. Default 65536.
	MaxBodyBytes int64 `env:"GATEWAY_MAX_BODY_BYTES" envDefault:"65536"`
	// MaxListPages bounds how many @odata.nextLink pages one list follows. Default 50.
	MaxListPages int `env:"GATEWAY_MAX_LIST_PAGES" envDefault:"50"`
	// DrainTimeout is how long requests in flight may finish after SIGTERM. Default 25s.
	DrainTimeout time.Duration `env:"GATEWAY_DRAIN_TIMEOUT" envDefault:"25s"`
	// BreakerFailures consecutive failed Graph calls open the circuit breaker. Default 5.
	BreakerFailures int `env:"GATEWAY_BREAKER_FAILURES" envDefault:"5"`
	// BreakerCooldown is how long the breaker stays open before one probe. Default 30s.
	BreakerCooldown time.Duration `env:"GATEWAY_BREAKER_COOLDOWN" envDefault:"30s"`
}

// FromEnv reads the configuration from environ (os.Environ's form, "KEY=value"). It does not
// validate: flags may still change fields, so call Validate once they have.
//
// When values do not parse (a duration such as "5x"), the error names every such variable
// with its value and the rule, and the Config returned beside it holds every setting that
// did parse, so that a program can still read its flags (and answer -h) before giving up.
func FromEnv(environ []string) (*Config, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	var c Config
	parseErr := env.ParseWithOptions(&c, env.Options{Environment: vars})
	if c.Callers.TenantID == "" {
		c.Callers.TenantID = c.Graph.TenantID
	}
	if c.Callers.AuthorityHost == "" {
		c.Callers.AuthorityHost = c.Graph.AuthorityHost
	}
	if parseErr != nil {
		return &c, fmt.Errorf("configuration cannot be read:\n%w", explainParse(parseErr, vars))
	}
	return &c, nil
}

// SettingError is an environment variable whose value cannot be read as its type.
type SettingError struct {
	// Name is the environment variable.
	Name string
	// Value is what it holds.
	Value string
	// Rule says what it should hold.
	Rule string
	// Err is the parser's own error.
	Err error
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("%s=%q: %s", e.Name, e.Value, e.Rule)
}

func (e *SettingError) Unwrap() error { return e.Err }

// explainParse rewrites the env library's errors, which name Go struct fields ("WriteWindow")
// that an operator never sees, into SettingErrors naming the variable. Errors it cannot map
// are kept as they are, so nothing is lost.
func explainParse(err error, vars map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	names := envNamesByField()
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			errs = append(errs, e)
			continue
		}
		name, ok := names[fieldOf{pe.Name, pe.Type}]
		if !ok {
			errs = append(errs, e)
			continue
		}
		errs = append(errs, &SettingError{Name: name, Value: vars[name],
			Rule: ruleFor(pe.Type), Err: e})
	}
	return errors.Join(errs...)
}

// fieldOf is what a ParseError says of the field it failed on.
type fieldOf struct {
	name string
	typ  reflect.Type
}

// envNamesByField maps each field of Config to its environment variable. A field name and
// type that occur twice (TenantID in two sections) cannot say which variable failed, so they
// are left out and their errors pass through unchanged; none of them is a type that fails to
// parse today, and a test keeps it so.
func envNamesByField() map[fieldOf]string {
	names := make(map[fieldOf]string)
	ambiguous := make(map[fieldOf]bool)
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup("env")
			if !ok {
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type)
				}
				continue
			}
			key := fieldOf{f.Name, f.Type}
			if _, seen := names[key]; seen {
				ambiguous[key] = true
			}
			names[key], _, _ = strings.Cut(tag, ",")
		}
	}
	walk(reflect.TypeOf(Config{}))
	for key := range ambiguous {
		delete(names, key)
	}
	return names
}

// ruleFor says, for a value of type t that did not parse, what it should have looked like.
func ruleFor(t reflect.Type) string {
	if t == reflect.TypeOf(time.Duration(0)) {
		return "not a duration (e.g. 20s, 1m30s)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "not true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "not a whole number (e.g. 100)"
	}
	return "cannot be read as " + t.String()
}

// EnvNames lists every environment variable the configuration reads, so that deployment
// manifests can be checked against it.
func EnvNames() ([]string, error) {
	params, err := env.GetFieldParams(&Config{})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(params))
	for _, p := range params {
		names = append(names, p.Key)
	}
	return names, nil
}

// Validate reports every problem at once, each naming the setting, its value and the rule.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, value, rule string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", name, value, rule))
	}

	for _, l := range []struct{ name, value string }{
		{"GATEWAY_ADDR", c.Addr}, {"GATEWAY_ADMIN_ADDR", c.AdminAddr},
	} {
		if _, _, err := net.SplitHostPort(l.value); err != nil {
			bad(l.name, l.value, "must be host:port (host may be empty)")
		}
	}
	if c.Addr == c.AdminAddr && !strings.HasSuffix(c.Addr, ":0") {
		bad("GATEWAY_ADMIN_ADDR", c.AdminAddr, "must differ from GATEWAY_ADDR")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", c.LogLevel, "must be debug, info, warn or error")
	}

	if _, err := c.TrustedProxyPrefixes(); err != nil {
		errs = append(errs, err)
	}

	errs = append(errs, c.Graph.validate()...)
	errs = append(errs, c.Callers.validate()...)
	errs = append(errs, c.Audit.validate()...)
	errs = append(errs, c.Budget.validate()...)
	errs = append(errs, c.Requests.validate()...)
	return errors.Join(errs...)
}

// TrustedProxyPrefixes parses TrustedProxies, each entry trimmed of spaces; blank entries
// (a trailing comma) are ignored. The error names every entry that is not a CIDR.
func (c *Config) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var (
		prefixes []netip.Prefix
		errs     []error
	)
	for _, entry := range c.TrustedProxies {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			errs = append(errs, fmt.Errorf("GATEWAY_TRUSTED_PROXIES entry %q: must be a CIDR "+
				"such as 10.0.0.0/8 or fd00::/8", entry))
			continue
		}
		prefixes = append(prefixes, p.Masked())
	}
	return prefixes, errors.Join(errs...)
}

func (g *GraphConfig) validate() []error {
	var errs []error
	bad := func(name, value, rule string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", name, value, rule))
	}

	if err := httpsURL(g.BaseURL); err != nil {
		bad("GRAPH_BASE_URL", g.BaseURL, err.Error())
	}
	if err := httpsURL(g.AuthorityHost); err != nil {
		bad("AZURE_AUTHORITY_HOST", g.AuthorityHost, err.Error())
	}
	if !strings.HasSuffix(g.Scope, "/.default") {
		bad("GRAPH_SCOPE", g.Scope, "must end with /.default (an app-only scope)")
	}
	if g.ManagedIdentity {
		return errs
	}

	if g.TenantID == "" {
		bad("AZURE_TENANT_ID", "", "required unless GATEWAY_USE_MANAGED_IDENTITY=true")
	}
	if g.ClientID == "" {
		bad("AZURE_CLIENT_ID", "", "required unless GATEWAY_USE_MANAGED_IDENTITY=true")
	}
	chosen := 0
	for _, v := range []string{g.ClientSecret, g.CertificatePath, g.FederatedTokenFile} {
		if v != "" {
			chosen++
		}
	}
	if chosen == 0 {
		errs = append(errs, errors.New("no Graph credential: set one of AZURE_CLIENT_SECRET, "+
			"AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE, "+
			"or GATEWAY_USE_MANAGED_IDENTITY=true"))
	}
	return errs
}

// Credential names the Graph credential the settings select: "managed-identity",
// "client-secret", "client-certificate" or "workload-identity". When several are set, the
// first in that order wins, as the README documents.
func (g *GraphConfig) Credential() string {
	switch {
	case g.ManagedIdentity:
		return "managed-identity"
	case g.ClientSecret != "":
		return "client-secret"
	case g.CertificatePath != "":
		return "client-certificate"
	case g.FederatedTokenFile != "":
		return "workload-identity"
	}
	return ""
}

func (c *CallersConfig) validate() []error {
	var errs []error
	if c.PolicyFile == "" {
		errs = append(errs, errors.New(`GATEWAY_POLICY_FILE="": required: `+
			"the YAML file naming each caller and what it may change"))
	}
	if c.TenantID != "" && len(c.Audiences) == 0 {
		errs = append(errs, errors.New(`GATEWAY_AUTH_AUDIENCES="": required when Entra `+
			"tokens are accepted (the gateway's app id and App ID URI, comma-separated)"))
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		errs = append(errs, fmt.Errorf("GATEWAY_AUTH_LEEWAY=%q: must be between 0 and 5m", c.Leeway))
	}
	return errs
}

func (a *AuditConfig) validate() []error {
	var errs []error
	if a.Path == "" {
		errs = append(errs, errors.New(`GATEWAY_AUDIT_LOG="": required: a file path, `+
			`or "-" for standard output`))
	}
	for _, n := range []struct {
		name  string
		value int
	}{
		{"GATEWAY_AUDIT_MAX_SIZE_MB", a.MaxSizeMB},
		{"GATEWAY_AUDIT_MAX_AGE_DAYS", a.MaxAgeDays},
		{"GATEWAY_AUDIT_MAX_BACKUPS", a.MaxBackups},
	} {
		if n.value < 0 {
			errs = append(errs, fmt.Errorf("%s=%d: must not be negative", n.name, n.value))
		}
	}
	return errs
}

func (b *BudgetConfig) validate() []error {
	var errs []error
	if b.WriteLimit < 1 {
		errs = append(errs, fmt.Errorf("GATEWAY_WRITE_LIMIT=%d: must be at least 1", b.WriteLimit))
	}
	if b.WriteWindow < time.Second {
		errs = append(errs, fmt.Errorf("GATEWAY_WRITE_WINDOW=%q: must be at least 1s", b.WriteWindow))
	}
	if b.MaxQueue < 1 {
		errs = append(errs, fmt.Errorf("GATEWAY_WRITE_QUEUE=%d: must be at least 1", b.MaxQueue))
	}
	if b.RedisAddr == "" && (b.RedisUsername != "" || b.RedisPassword != "" || b.RedisTLS) {
		errs = append(errs, errors.New(`GATEWAY_REDIS_ADDR="": required when other `+
			"GATEWAY_REDIS_* settings are given"))
	}
	if b.RedisAddr != "" {
		if _, _, err := net.SplitHostPort(b.RedisAddr); err != nil {
			errs = append(errs, fmt.Errorf("GATEWAY_REDIS_ADDR=%q: must be host:port", b.RedisAddr))
		}
	}
	return errs
}

func (r *RequestConfig) validate() []error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: must be positive", name, d))
		}
	}

	positive("GATEWAY_REQUEST_TIMEOUT", r.Timeout)
	positive("GATEWAY_UPSTREAM_TIMEOUT", r.UpstreamTimeout)
	positive("GATEWAY_DRAIN_TIMEOUT", r.DrainTimeout)
	positive("GATEWAY_BREAKER_COOLDOWN", r.BreakerCooldown)
	if r.UpstreamTimeout > r.Timeout {
		errs = append(errs, fmt.Errorf("GATEWAY_UPSTREAM_TIMEOUT=%q: must not exceed "+
			"GATEWAY_REQUEST_TIMEOUT=%q, or no attempt could ever use it", r.UpstreamTimeout, r.Timeout))
	}
	if r.BreakerFailures < 1 {
		errs = append(errs, fmt.Errorf("GATEWAY_BREAKER_FAILURES=%d: must be at least 1",
			r.BreakerFailures))
	}
	if r.MaxRetries < 0 || r.MaxRetries > 10 {
		errs = append(errs, fmt.Errorf("GATEWAY_MAX_RETRIES=%d: must be between 0 and 10", r.MaxRetries))
	}
	if r.MaxBodyBytes < 1024 || r.MaxBodyBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("GATEWAY_MAX_BODY_BYTES=%d: must be between 1024 and 1048576",
			r.MaxBodyBytes))
	}
	if r.MaxListPages < 1 {
		errs = append(errs, fmt.Errorf("GATEWAY_MAX_LIST_PAGES=%d: must be at least 1", r.MaxListPages))
	}
	return errs
}

func httpsURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" || u.Host == "" {
		return errors.New("must be an https URL with a host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not carry credentials, a query or a fragment")
	}
	return nil
}
