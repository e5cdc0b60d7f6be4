package callers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// maxDiscoveryBytes bounds the discovery document; Entra's is about 2 KiB.
const maxDiscoveryBytes = 1 << 20

// maxTokenBytes bounds a bearer token before it is parsed; Entra access tokens stay well under
// 8 KiB even with many roles.
const maxTokenBytes = 16 << 10

// signingAlgorithm is the only algorithm Entra ID signs access tokens with.
const signingAlgorithm = "RS256"

var errMissingKID = errors.New("token header has no kid")

// discovery is the part of the OpenID configuration the gateway uses.
type discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// entraClaims are the claims of an Entra ID access token the gateway checks.
type entraClaims struct {
	jwt.RegisteredClaims
	TenantID string   `json:"tid"`
	AZP      string   `json:"azp"`   // client app id in v2 tokens
	AppID    string   `json:"appid"` // client app id in v1 tokens
	Roles    []string `json:"roles"`
	Version  string   `json:"ver"` // "1.0" or "2.0": which endpoint format issued the token
}

// entraVerifier checks bearer tokens against one tenant's keys.
type entraVerifier struct {
	cfg    Config
	issuer string
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// newEntraVerifier reads the tenant's discovery document and its signing keys. ctx bounds the
// background key refresh; each request is bounded by cfg.HTTPTimeout.
func newEntraVerifier(ctx context.Context, cfg Config, logger *zap.Logger) (*entraVerifier, error) {
	doc, err := discover(ctx, cfg)
	if err != nil {
		return nil, err
	}
	keys, err := newKeySet(ctx, cfg, doc.JWKSURI, logger)
	if err != nil {
		return nil, err
	}
	logger.Info("entra id token verification ready",
		zap.String("issuer", doc.Issuer), zap.String("jwks_uri", doc.JWKSURI),
		zap.Strings("audiences", cfg.Audiences), zap.String("required_role", cfg.RequiredRole))
	return &entraVerifier{
		cfg:    cfg,
		issuer: doc.Issuer,
		keys:   keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{signingAlgorithm}),
			jwt.WithIssuer(doc.Issuer),
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		),
	}, nil
}

// discover fetches and checks the tenant's v2.0 OpenID configuration.
func discover(ctx context.Context, cfg Config) (discovery, error) {
	endpoint := strings.TrimRight(cfg.AuthorityHost, "/") + "/" + cfg.TenantID +
		"/v2.0/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return discovery{}, fmt.Errorf("oidc discovery %s: %w", endpoint, err)
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return discovery{}, fmt.Errorf("oidc discovery %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return discovery{}, fmt.Errorf("oidc discovery %s: status %d, want 200 (is the tenant "+
			"id right?)", endpoint, resp.StatusCode)
	}
	var doc discovery
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDiscoveryBytes)).Decode(&doc); err != nil {
		return discovery{}, fmt.Errorf("oidc discovery %s: decode: %w", endpoint, err)
	}
	if err := doc.check(cfg.TenantID); err != nil {
		return discovery{}, fmt.Errorf("oidc discovery %s: %w", endpoint, err)
	}
	return doc, nil
}

func (d discovery) check(tenantID string) error {
	if d.Issuer == "" || !strings.Contains(strings.ToLower(d.Issuer), strings.ToLower(tenantID)) {
		return fmt.Errorf("issuer %q: must be set and name tenant %s", d.Issuer, tenantID)
	}
	if u, err := url.Parse(d.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("jwks_uri %q: must be an https URL", d.JWKSURI)
	}
	return nil
}

// newKeySet fetches the JWKS once (failing if it cannot) and keeps it fresh: in the background
// every KeyRefreshInterval, and on demand when a token names an unknown kid, at most once per
// UnknownKeyRefreshInterval.
func newKeySet(ctx context.Context, cfg Config, jwksURI string,
	logger *zap.Logger) (keyfunc.Keyfunc, error) {
	failFirst := false
	refreshFailed := func(u string) func(context.Context, error) {
		return func(_ context.Context, err error) {
			logger.Warn("failed to refresh signing keys", zap.String("jwks_uri", u), zap.Error(err))
		}
	}
	remote, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURI}, keyfunc.Override{
		Client:                    cfg.HTTPClient,
		HTTPTimeout:               cfg.HTTPTimeout,
		NoErrorReturnFirstHTTPReq: &failFirst,
		RefreshErrorHandlerFunc:   refreshFailed,
		RefreshInterval:           cfg.KeyRefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(cfg.UnknownKeyRefreshInterval), 1),
		// The wait bound also bounds the refresh itself, which runs under the same context.
		// A token that would have to wait longer than this for its refresh is refused at once.
		RateLimitWaitMax: cfg.HTTPTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("fetch signing keys %s: %w", jwksURI, err)
	}
	// Only keys published for signatures verify tokens.
	return keyfunc.New(keyfunc.Options{
		Ctx:          ctx,
		Storage:      remote.Storage(),
		UseWhitelist: []jwkset.USE{jwkset.UseSig},
	})
}

// verifyToken checks a bearer token and returns the caller it identifies.
func (a *Authenticator) verifyToken(ctx context.Context, raw string) (Caller, *Error) {
	v := a.entra
	var claims entraClaims
	token, err := v.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["kid"].(string); !ok {
			return nil, errMissingKID
		}
		return v.keys.KeyfuncCtx(ctx)(t)
	})
	if err != nil {
		return Caller{}, a.tokenError(token, &claims, err)
	}
	if !strings.EqualFold(claims.TenantID, v.cfg.TenantID) {
		return Caller{}, a.unauthorized(ReasonWrongTenant, "token was issued for another tenant")
	}
	id := claims.AZP
	if id == "" {
		id = claims.AppID
	}
	if !guidPattern.MatchString(id) {
		return Caller{}, a.unauthorized(ReasonMissingIdentity,
			"token carries no client application id (azp or appid)")
	}
	caller := Caller{Kind: KindEntra, ID: strings.ToLower(id)}
	if !slices.Contains(claims.Roles, v.cfg.RequiredRole) {
		return caller, a.forbidden(ReasonMissingRole, fmt.Sprintf(
			"the calling application lacks the app role %s on the gateway", v.cfg.RequiredRole))
	}
	return caller, nil
}

// tokenError turns a parse failure into the most specific reason. Claim checks are reported
// together by the JWT library, so the order here decides which one the caller hears about:
// who the token is for before when it is valid.
func (a *Authenticator) tokenError(token *jwt.Token, claims *entraClaims, err error) *Error {
	// The library's message names the failed check and, at most, a kid; never the token.
	a.logger.Debug("bearer token rejected", zap.Error(err))
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return a.unauthorized(ReasonInvalidToken, "token is not a well-formed JWT")
	}
	if token != nil {
		if alg, _ := token.Header["alg"].(string); alg != signingAlgorithm {
			return a.unauthorized(ReasonDisallowedAlgorithm,
				"token must be signed with "+signingAlgorithm)
		}
	}
	if e := a.explainAudience(claims, err); e != nil {
		return e
	}
	checks := []struct {
		target error
		reason string
		detail string
	}{
		{errMissingKID, ReasonInvalidToken, "token header has no kid"},
		// Every key lookup failure lands here: a kid the tenant does not publish, even after
		// a refresh, or one whose refresh is not allowed yet.
		{keyfunc.ErrKeyfunc, ReasonUnknownKey,
			"token is signed with a key the tenant does not publish"},
		{jwt.ErrTokenUnverifiable, ReasonInvalidToken, "token signature cannot be verified"},
		{jwt.ErrTokenSignatureInvalid, ReasonInvalidToken, "token signature is invalid"},
		{jwt.ErrTokenInvalidIssuer, ReasonWrongIssuer, "token was not issued by the tenant"},
		{jwt.ErrTokenInvalidAudience, ReasonWrongAudience, "token is not meant for this gateway"},
		{jwt.ErrTokenExpired, ReasonExpired, "token has expired"},
		{jwt.ErrTokenNotValidYet, ReasonNotYetValid, "token is not valid yet (nbf)"},
		{jwt.ErrTokenUsedBeforeIssued, ReasonNotYetValid, "token is issued in the future (iat)"},
		{jwt.ErrTokenRequiredClaimMissing, ReasonInvalidToken, "token lacks a required claim"},
	}
	for _, c := range checks {
		if errors.Is(err, c.target) {
			return a.unauthorized(c.reason, c.detail)
		}
	}
	return a.unauthorized(ReasonInvalidToken, "token is invalid")
}

// explainAudience says what is wrong with a token meant for another resource, or one in the
// v1.0 format, and how to ask for the right one: the mistakes a caller makes when it requests
// a Graph token, or when the gateway's app registration still issues v1.0 tokens. It trusts
// the claims only when err is a claim failure, which the JWT library reports only after the
// signature has been verified; a forged token never gets this far. It returns nil when it has
// nothing more specific to say.
func (a *Authenticator) explainAudience(claims *entraClaims, err error) *Error {
	if !errors.Is(err, jwt.ErrTokenInvalidClaims) {
		return nil
	}
	wrongAudience := errors.Is(err, jwt.ErrTokenInvalidAudience)
	wrongIssuer := errors.Is(err, jwt.ErrTokenInvalidIssuer)
	// A v1.0 token from this tenant fails the issuer check only because of its format. Any
	// other issuer is another authority or tenant, and that is the first thing to fix.
	v1FromTenant := claims.Version == "1.0" &&
		strings.EqualFold(claims.TenantID, a.entra.cfg.TenantID)
	if (wrongIssuer && !v1FromTenant) || (!wrongIssuer && !wrongAudience) {
		return nil
	}

	const v1 = "it is a v1.0 token and the gateway accepts only v2.0 tokens"
	if !wrongAudience {
		return a.unauthorized(ReasonWrongIssuer, fmt.Sprintf("token was issued by the "+
			"tenant's v1.0 endpoint (iss %q): %s; set requestedAccessTokenVersion to 2 in the "+
			"manifest of the gateway's app registration", claims.Issuer, v1))
	}
	detail := fmt.Sprintf("token is for audience %s, not this gateway (want %s)",
		quoteList(claims.Audience, ", "), quoteList(a.entra.cfg.Audiences, " or "))
	if wrongIssuer {
		detail += "; " + v1
	}
	return a.unauthorized(ReasonWrongAudience,
		detail+"; request a token for scope "+a.entra.scope())
}

// scope is the scope a caller requests to get a token for the gateway: its App ID URI (or,
// without one, its application id) followed by /.default.
func (v *entraVerifier) scope() string {
	resource := v.cfg.Audiences[0]
	for _, aud := range v.cfg.Audiences {
		if strings.Contains(aud, ":") {
			resource = aud
			break
		}
	}
	return strings.TrimRight(resource, "/") + "/.default"
}

// quoteList quotes each value and joins them with sep; no values at all show as "".
func quoteList(values []string, sep string) string {
	if len(values) == 0 {
		return `""`
	}
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(quoted, sep)
}
