package callers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultAuthorityHost             = "https://login.microsoftonline.com/"
	DefaultRequiredRole              = "TunnelServers.Write"
	DefaultLeeway                    = time.Minute
	DefaultHTTPTimeout               = 10 * time.Second
	DefaultKeyRefreshInterval        = time.Hour
	DefaultUnknownKeyRefreshInterval = time.Minute
	DefaultRealm                     = "tunnel-gateway"
)

var guidPattern = regexp.MustCompile(
	`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Config says how Entra ID tokens are checked. With TenantID empty, bearer tokens are refused
// and only API keys are accepted.
type Config struct {
	// TenantID is the directory (tenant) id, a GUID, whose tokens are accepted. Empty disables
	// Entra ID authentication.
	TenantID string
	// AuthorityHost is the Entra ID authority; discovery is read from
	// {AuthorityHost}/{TenantID}/v2.0/.well-known/openid-configuration. It must be https.
	// Default DefaultAuthorityHost.
	AuthorityHost string
	// Audiences are the accepted aud values: the gateway's application id and/or its App ID
	// URI. Required when TenantID is set.
	Audiences []string
	// RequiredRole is the app role a token's roles claim must hold. Default DefaultRequiredRole.
	RequiredRole string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default DefaultLeeway.
	Leeway time.Duration
	// HTTPClient fetches the discovery document and the signing keys. Default: a client with
	// a DefaultHTTPTimeout timeout.
	HTTPClient *http.Client
	// HTTPTimeout bounds each discovery or key request. Default DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// KeyRefreshInterval is how often the signing keys are fetched again in the background.
	// Default DefaultKeyRefreshInterval.
	KeyRefreshInterval time.Duration
	// UnknownKeyRefreshInterval is the least time between two key fetches triggered by tokens
	// naming an unknown key id, so that such tokens cannot flood the authority. A token that
	// arrives while the fetch is not allowed is refused at once rather than held.
	// Default DefaultUnknownKeyRefreshInterval.
	UnknownKeyRefreshInterval time.Duration
	// Realm is the realm of WWW-Authenticate challenges. Default DefaultRealm.
	Realm string
}

// EntraEnabled reports whether the configuration accepts Entra ID tokens.
func (c Config) EntraEnabled() bool {
	return c.TenantID != ""
}

func (c Config) withDefaults() Config {
	if c.AuthorityHost == "" {
		c.AuthorityHost = DefaultAuthorityHost
	}
	if c.RequiredRole == "" {
		c.RequiredRole = DefaultRequiredRole
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = DefaultHTTPTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.HTTPTimeout}
	}
	if c.KeyRefreshInterval == 0 {
		c.KeyRefreshInterval = DefaultKeyRefreshInterval
	}
	if c.UnknownKeyRefreshInterval == 0 {
		c.UnknownKeyRefreshInterval = DefaultUnknownKeyRefreshInterval
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	return c
}

// validate reports every problem of an Entra configuration together.
func (c Config) validate() error {
	var errs []error
	bad := func(field string, value any, rule string) {
		errs = append(errs, fmt.Errorf("callers config %s=%q: %s", field, fmt.Sprint(value), rule))
	}
	if !guidPattern.MatchString(c.TenantID) {
		bad("TenantID", c.TenantID, "must be the tenant's directory id GUID, not a domain name")
	}
	if u, err := url.Parse(c.AuthorityHost); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("AuthorityHost", c.AuthorityHost, "must be an https URL")
	}
	if len(c.Audiences) == 0 {
		bad("Audiences", "", "at least one is required: the gateway's app id or App ID URI")
	}
	for _, aud := range c.Audiences {
		if strings.TrimSpace(aud) == "" {
			bad("Audiences", aud, "must not hold an empty value")
		}
	}
	if strings.TrimSpace(c.RequiredRole) == "" {
		bad("RequiredRole", c.RequiredRole, "must not be blank")
	}
	durations := []struct {
		field string
		value time.Duration
	}{
		{"Leeway", c.Leeway}, {"HTTPTimeout", c.HTTPTimeout},
		{"KeyRefreshInterval", c.KeyRefreshInterval},
		{"UnknownKeyRefreshInterval", c.UnknownKeyRefreshInterval},
	}
	for _, d := range durations {
		if d.value < 0 {
			bad(d.field, d.value, "must not be negative")
		}
	}
	return errors.Join(errs...)
}
