package graphsim

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// Workload identity federation: an app trusts tokens of an external OpenID Connect issuer (here
// a simulated Kubernetes cluster) through federated identity credentials, and a workload sends
// such a token as its client_assertion instead of a secret or a certificate-signed JWT.
const (
	// DefaultFederatedAudience is the audience Entra proposes for a federated credential and
	// the one the AKS webhook asks the kubelet to put in projected tokens.
	DefaultFederatedAudience = "api://AzureADTokenExchange"

	// GatewayServiceAccountSubject is the subject of the gateway's ServiceAccount as deploy/
	// names it (namespace tunnel-gateway, account tunnel-gateway).
	GatewayServiceAccountSubject = "system:serviceaccount:tunnel-gateway:tunnel-gateway"

	// WorkloadIdentityClientID is reserved for an app a test registers with
	// NewWorkloadIdentityApp; DefaultApps does not include it, so that the default tenant
	// keeps answering as before.
	WorkloadIdentityClientID = "0ab1c2d3-6e7f-4a81-9c93-1e2f3a4b5c6d"

	// ServiceAccountClusterID names the simulated cluster in its issuer URL, as AKS puts a
	// cluster's id in its OIDC issuer URL.
	ServiceAccountClusterID = "c1a5e7b9-2d4f-4a6c-8e0a-3b5d7f9a1c2e"

	// defaultServiceAccountTokenLifetime is what the AKS webhook asks for by default (1 hour).
	defaultServiceAccountTokenLifetime = time.Hour

	jwtBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	federationDocsURL      = "https://learn.microsoft.com/entra/workload-id/" +
		"workload-identity-federation"
	// issuerFetchTimeout bounds the fetch of an issuer's metadata and keys per token request.
	issuerFetchTimeout = 10 * time.Second
	// issuerDocumentLimit bounds what the simulator reads of an issuer's documents.
	issuerDocumentLimit = 1 << 20
)

// FederatedCredential is a federated identity credential of an app registration: tokens whose
// iss and sub equal Issuer and Subject and whose aud holds one of Audiences stand for the app.
// Entra matches all three case-sensitively, trailing slashes included.
type FederatedCredential struct {
	Name string
	// Issuer is the external issuer's URL. Empty means ServiceAccountIssuer(), the simulated
	// cluster, whose URL is only known once the simulator listens.
	Issuer  string
	Subject string
	// Audiences default to DefaultFederatedAudience.
	Audiences []string
}

// NewWorkloadIdentityApp returns an app that authenticates only with a federated credential
// trusting the simulated cluster's tokens for GatewayServiceAccountSubject, as deploy/README.md
// sets up on AKS. Register it through Options.Apps.
func NewWorkloadIdentityApp(clientID string, graphRoles []string) App {
	return App{ClientID: clientID, GraphRoles: graphRoles,
		FederatedCredentials: []FederatedCredential{
			{Name: "aks-tunnel-gateway", Subject: GatewayServiceAccountSubject}}}
}

// ServiceAccountIssuer is the OIDC issuer URL of the simulated Kubernetes cluster. Like an AKS
// issuer it ends with a slash; its discovery document and JWKS are served under it.
func (s *Simulator) ServiceAccountIssuer() string {
	return s.url + "/oidc/kubernetes/" + ServiceAccountClusterID + "/"
}

// ServiceAccountTokenOptions choose the claims and signature of MintServiceAccountToken, so
// that tests can produce every kind of assertion Entra refuses.
type ServiceAccountTokenOptions struct {
	// Subject is the sub claim. Default GatewayServiceAccountSubject.
	Subject string
	// Audience is the single aud value. Default DefaultFederatedAudience.
	Audience string
	// Issuer is the iss claim. Default ServiceAccountIssuer(); the token is still signed
	// with the simulated cluster's key.
	Issuer string
	// IssuedAt is iat and nbf. Default now.
	IssuedAt time.Time
	// Lifetime is exp - iat. Default 1h.
	Lifetime time.Duration
	// Signing chooses a bad signature or header (SignUnknownKID, SignUnregisteredKey, …).
	Signing MintOptions
}

// MintServiceAccountToken signs a projected service account token for the simulated cluster,
// as the kubelet writes it to the file AZURE_FEDERATED_TOKEN_FILE names.
func (s *Simulator) MintServiceAccountToken(o ServiceAccountTokenOptions) (string, error) {
	if o.Subject == "" {
		o.Subject = GatewayServiceAccountSubject
	}
	if o.Audience == "" {
		o.Audience = DefaultFederatedAudience
	}
	if o.Issuer == "" {
		o.Issuer = s.ServiceAccountIssuer()
	}
	if o.IssuedAt.IsZero() {
		o.IssuedAt = time.Now()
	}
	if o.Lifetime == 0 {
		o.Lifetime = defaultServiceAccountTokenLifetime
	}
	claims := map[string]any{
		"iss": o.Issuer, "sub": o.Subject, "aud": []string{o.Audience},
		"iat": o.IssuedAt.Unix(), "nbf": o.IssuedAt.Unix(),
		"exp": o.IssuedAt.Add(o.Lifetime).Unix(), "jti": uuid.NewString(),
	}
	// Kubernetes adds where the token belongs; Entra ignores it, but a reader of a minted
	// token should recognise a projected token.
	if namespace, account, ok := splitServiceAccountSubject(o.Subject); ok {
		claims["kubernetes.io"] = map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]any{"name": account, "uid": uuid.NewString()},
		}
	}
	return s.saKeys.mint(claims, o.Signing)
}

func splitServiceAccountSubject(sub string) (namespace, account string, ok bool) {
	rest, found := strings.CutPrefix(sub, "system:serviceaccount:")
	if !found {
		return "", "", false
	}
	return strings.Cut(rest, ":")
}

// handleServiceAccountDiscovery serves the simulated cluster's OpenID configuration, shaped
// like the one an AKS OIDC issuer publishes.
func (s *Simulator) handleServiceAccountDiscovery(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("cluster") != ServiceAccountClusterID {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	issuer := s.ServiceAccountIssuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              issuer + "openid/v1/jwks",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

// handleServiceAccountKeys publishes the simulated cluster's signing keys.
func (s *Simulator) handleServiceAccountKeys(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("cluster") != ServiceAccountClusterID {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, s.saKeys.jwks())
}

// isFederatedAssertion tells an external issuer's token from a certificate credential: the
// latter names the app itself as issuer and its certificate in x5t or x5t#S256.
func isFederatedAssertion(app App, header map[string]any, claims jwt.MapClaims) bool {
	if header["x5t"] != nil || header["x5t#S256"] != nil {
		return false
	}
	iss, _ := claims.GetIssuer()
	return !strings.EqualFold(iss, app.ClientID)
}

// checkFederatedAssertion verifies a token of an external issuer in Entra's order: the app
// must have federated credentials and one for the token's issuer; the issuer's published keys
// must verify the signature; the token must be within its lifetime; then subject and audience
// must match one of that issuer's credentials.
func (s *Simulator) checkFederatedAssertion(ctx context.Context, app App, assertion string,
	header map[string]any, claims jwt.MapClaims) *entraError {
	iss, _ := claims.GetIssuer()
	sub, _ := claims.GetSubject()
	aud, _ := claims.GetAudience()

	if typ, ok := header["typ"].(string); ok && !strings.EqualFold(typ, "JWT") &&
		typ != "http://openid.net/specs/jwt/1.0" {
		return &entraError{status: http.StatusBadRequest, err: "invalid_request", code: 5002727,
			description: "Invalid JWT header type specified, must be 'JWT' or " +
				"'http://openid.net/specs/jwt/1.0'."}
	}
	if len(app.FederatedCredentials) == 0 {
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 70021,
			description: fmt.Sprintf("No matching federated identity record found for "+
				"presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. "+
				"Assertion Audience: '%s'. %s", iss, sub, strings.Join(aud, ","),
				federationDocsURL)}
	}
	trusted := s.credentialsFor(app, iss)
	if len(trusted) == 0 {
		return noFederatedMatch(700211, "issuer", iss)
	}

	keys, err := s.issuerKeys(ctx, iss)
	if err != nil {
		s.log.Debug("failed to fetch federated issuer keys", zap.Error(err))
		return &entraError{status: http.StatusBadRequest, err: "invalid_request", code: 50166,
			description: "Request to External OIDC endpoint failed."}
	}
	if eerr := verifyFederatedSignature(assertion, iss, keys); eerr != nil {
		return eerr
	}

	trusted = slices.DeleteFunc(trusted, func(c FederatedCredential) bool {
		return c.Subject != sub
	})
	if len(trusted) == 0 {
		return noFederatedMatch(700213, "subject", sub)
	}
	for _, c := range trusted {
		for _, a := range aud {
			if slices.Contains(c.Audiences, a) {
				return nil
			}
		}
	}
	return noFederatedMatch(700212, "audience", strings.Join(aud, ","))
}

// credentialsFor returns the app's federated credentials for issuer, matched exactly.
func (s *Simulator) credentialsFor(app App, issuer string) []FederatedCredential {
	var found []FederatedCredential
	for _, c := range app.FederatedCredentials {
		if c.Issuer == "" {
			c.Issuer = s.ServiceAccountIssuer()
		}
		if c.Issuer == issuer {
			found = append(found, c)
		}
	}
	return found
}

func noFederatedMatch(code int, field, value string) *entraError {
	return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: code,
		description: fmt.Sprintf("No matching federated identity record found for presented "+
			"assertion %s '%s'. Please check your federated identity credential Subject, "+
			"Audience and Issuer against the presented assertion. %s", field, value,
			federationDocsURL)}
}

var errFederatedKeyNotFound = errors.New("kid not published by the issuer")

// verifyFederatedSignature checks the signature against the issuer's keys, then exp and nbf
// with the same 5 minutes of skew Entra allows certificate assertions.
func verifyFederatedSignature(assertion, issuer string,
	keys map[string]*rsa.PublicKey) *entraError {
	var kid string
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Minute),
	).ParseWithClaims(assertion, claims, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		if key, ok := keys[kid]; ok {
			return key, nil
		}
		return nil, errFederatedKeyNotFound
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errFederatedKeyNotFound):
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 7000272,
			description: fmt.Sprintf("The certificate with identifier %s used to sign the "+
				"federated credential could not be found in the metadata of identity provider "+
				"%s. Please validate that your Identity Provider's metadata exposes the key "+
				"used to sign the incoming token.", kid, issuer)}
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return outsideTimeRange(claims)
	default:
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 7000274,
			description: "Client assertion contains an invalid signature. [Reason - Key was " +
				"found, but use of the key to verify the signature failed.]"}
	}
}

// outsideTimeRange is AADSTS700024 with the times Entra reports: now, nbf (the epoch when
// absent) and exp.
func outsideTimeRange(claims jwt.MapClaims) *entraError {
	const layout = "2006-01-02T15:04:05.0000000Z"
	from, exp := time.Unix(0, 0), time.Unix(0, 0)
	if nbf, err := claims.GetNotBefore(); err == nil && nbf != nil {
		from = nbf.Time
	}
	if e, err := claims.GetExpirationTime(); err == nil && e != nil {
		exp = e.Time
	}
	return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 700024,
		description: fmt.Sprintf("Client assertion is not within its valid time range. "+
			"Current time: %s, assertion valid from %s, expiry time of assertion %s. Review "+
			"the documentation at https://learn.microsoft.com/entra/identity-platform/"+
			"certificate-credentials .", time.Now().UTC().Format(layout),
			from.UTC().Format(layout), exp.UTC().Format(layout))}
}

// issuerKeys fetches the issuer's OpenID configuration and then the RSA keys its jwks_uri
// publishes, as Entra does for federated assertions. Entra caches both for a while; the
// simulator fetches on every request so that a test sees a changed key at once.
func (s *Simulator) issuerKeys(ctx context.Context, issuer string) (map[string]*rsa.PublicKey,
	error) {
	ctx, cancel := context.WithTimeout(ctx, issuerFetchTimeout)
	defer cancel()

	var config struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	discovery := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	if err := s.getJSON(ctx, discovery, &config); err != nil {
		return nil, fmt.Errorf("issuer discovery: %w", err)
	}
	// OpenID Connect Discovery requires the document's issuer to be the URL it was found by.
	if config.Issuer != issuer || config.JWKSURI == "" {
		return nil, fmt.Errorf("issuer discovery: issuer %q, jwks_uri %q", config.Issuer,
			config.JWKSURI)
	}

	var set struct{ Keys []jwk }
	if err := s.getJSON(ctx, config.JWKSURI, &set); err != nil {
		return nil, fmt.Errorf("issuer keys: %w", err)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if key, err := k.rsaPublicKey(); err == nil {
			keys[k.Kid] = key
		}
	}
	return keys, nil
}

// getJSON fetches an https url with the simulator's own transport (which trusts its
// certificate), following no redirect, and decodes a 200 answer into v. The issuer's URL is
// one a credential names, but the jwks_uri comes from the document, so both are held to
// https and to the one request.
func (s *Simulator) getJSON(ctx context.Context, rawURL string, v any) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an https URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: s.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		// Read what is left (within the limit) so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, issuerDocumentLimit))
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, issuerDocumentLimit)).Decode(v)
}

// rsaPublicKey decodes an RSA JWK; other key types are not used by Kubernetes issuers.
func (k jwk) rsaPublicKey() (*rsa.PublicKey, error) {
	if k.Kty != "RSA" {
		return nil, fmt.Errorf("key type %q", k.Kty)
	}
	n, errN := base64.RawURLEncoding.DecodeString(k.N)
	e, errE := base64.RawURLEncoding.DecodeString(k.E)
	if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("malformed RSA key")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())},
		nil
}
