package callers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

const headerAPIKey = "X-Api-Key"

// Authenticator identifies the caller of a request from its Authorization bearer token or its
// X-Api-Key header. It is safe for concurrent use.
type Authenticator struct {
	entra  *entraVerifier // nil when Entra ID tokens are not accepted
	keys   KeySource      // nil when no API keys are accepted
	realm  string
	logger *zap.Logger
}

// New builds an Authenticator. When cfg.TenantID is set, it reads the tenant's OpenID
// configuration and signing keys before returning, and fails with a clear error if it cannot
// within cfg.HTTPTimeout per request. ctx bounds the life of the background key refresh:
// cancel it when the gateway stops. keys supplies the API keys (nil accepts none); a nil logger
// logs nothing.
func New(ctx context.Context, cfg Config, keys KeySource,
	logger *zap.Logger) (*Authenticator, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	a := &Authenticator{keys: keys, realm: cfg.Realm, logger: logger}
	if !cfg.EntraEnabled() {
		if keys == nil {
			return nil, errors.New("new authenticator: neither a tenant nor API keys " +
				"are configured, so no caller could authenticate")
		}
		logger.Info("entra id tokens are not accepted: no tenant configured; api keys only")
		return a, nil
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new authenticator: %w", err)
	}
	verifier, err := newEntraVerifier(ctx, cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("new authenticator: %w", err)
	}
	a.entra = verifier
	return a, nil
}

// Authenticate identifies the caller of r. It returns an *Error when the request carries no
// credentials, malformed or conflicting ones, or credentials that fail their checks. A caller
// refused only for lacking the required role is returned alongside the 403 error, so that the
// refusal can be logged against it.
func (a *Authenticator) Authenticate(r *http.Request) (Caller, error) {
	caller, err := a.authenticate(r)
	if err != nil {
		// A nil *Error must not become a non-nil error interface.
		return caller, err
	}
	return caller, nil
}

func (a *Authenticator) authenticate(r *http.Request) (Caller, *Error) {
	authorization := r.Header.Values("Authorization")
	apiKeys := r.Header.Values(headerAPIKey)
	switch {
	case len(authorization) > 0 && len(apiKeys) > 0:
		return Caller{}, a.unauthorized(ReasonAmbiguousCredentials,
			"send either Authorization or X-Api-Key, not both")
	case len(authorization) > 1:
		return Caller{}, a.unauthorized(ReasonMalformedHeader,
			"send one Authorization header")
	case len(apiKeys) > 1:
		return Caller{}, a.unauthorized(ReasonMalformedHeader, "send one X-Api-Key header")
	case len(authorization) == 1:
		return a.authenticateBearer(r.Context(), authorization[0])
	case len(apiKeys) == 1:
		return a.authenticateAPIKey(apiKeys[0])
	default:
		return Caller{}, a.unauthorized(ReasonMissingCredentials,
			"send an Entra ID access token (Authorization: Bearer) or an API key (X-Api-Key)")
	}
}

func (a *Authenticator) authenticateBearer(ctx context.Context, header string) (Caller, *Error) {
	scheme, token, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Caller{}, a.unauthorized(ReasonMalformedHeader,
			"Authorization must use the Bearer scheme")
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return Caller{}, a.unauthorized(ReasonMalformedHeader,
			"Authorization must be \"Bearer\" followed by one token")
	}
	// The header is well formed; what is wrong is the token, so the caller is told its limit.
	if len(token) > maxTokenBytes {
		return Caller{}, a.unauthorized(ReasonInvalidToken,
			fmt.Sprintf("token too long (limit %d characters)", maxTokenBytes))
	}
	if a.entra == nil {
		return Caller{}, a.unauthorized(ReasonBearerNotAccepted,
			"this gateway accepts API keys (X-Api-Key) only")
	}
	return a.verifyToken(ctx, token)
}
