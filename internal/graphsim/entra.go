package graphsim

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// entraError is an error of the token endpoint in Entra ID's shape.
type entraError struct {
	status      int
	err         string // the OAuth error code, e.g. invalid_client
	code        int    // the AADSTS number
	description string // without the AADSTS prefix and trace suffix
}

type entraErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
}

func (s *Simulator) writeEntraError(w http.ResponseWriter, r *http.Request, e *entraError) {
	now := time.Now().UTC()
	traceID, correlationID := uuid.NewString(), r.Header.Get("client-request-id")
	if correlationID == "" {
		correlationID = uuid.NewString()
	}
	stamp := now.Format("2006-01-02 15:04:05Z")
	body := entraErrorBody{
		Error: e.err,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			e.code, e.description, traceID, correlationID, stamp),
		ErrorCodes:    []int{e.code},
		Timestamp:     stamp,
		TraceID:       traceID,
		CorrelationID: correlationID,
		ErrorURI:      fmt.Sprintf("%s/error?code=%d", s.url, e.code),
	}
	w.Header().Set("x-ms-request-id", traceID)
	writeJSON(w, e.status, body)
}

func tenantNotFound(tenant, oauthErr string) *entraError {
	return &entraError{status: http.StatusBadRequest, err: oauthErr, code: 90002,
		description: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct "+
			"tenant ID and are signing into the correct cloud.", tenant)}
}

// handleDiscovery serves the v2 OpenID configuration MSAL reads before asking for a token.
// Its issuer shares scheme and host with the authority, which MSAL checks.
func (s *Simulator) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !s.tenantMatches(tenant) {
		s.writeEntraError(w, r, tenantNotFound(tenant, "invalid_tenant"))
		return
	}
	base := s.url + "/" + s.opts.TenantID
	writeJSON(w, http.StatusOK, s.discoveryDocument(base+"/v2.0", base+"/oauth2/v2.0",
		base+"/discovery/v2.0/keys"))
}

// handleDiscoveryV1 serves the v1 configuration, whose issuer is the sts.windows.net form
// found in v1 tokens such as Graph's.
func (s *Simulator) handleDiscoveryV1(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !s.tenantMatches(tenant) {
		s.writeEntraError(w, r, tenantNotFound(tenant, "invalid_tenant"))
		return
	}
	base := s.url + "/" + s.opts.TenantID
	writeJSON(w, http.StatusOK, s.discoveryDocument(s.issuerV1(), base+"/oauth2",
		base+"/discovery/keys"))
}

func (s *Simulator) discoveryDocument(issuer, oauthBase, jwksURI string) map[string]any {
	return map[string]any{
		"issuer":                 issuer,
		"authorization_endpoint": oauthBase + "/authorize",
		"token_endpoint":         oauthBase + "/token",
		"jwks_uri":               jwksURI,
		"token_endpoint_auth_methods_supported": []string{
			"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"msgraph_host":                          "graph.microsoft.com",
	}
}

// issuerV1 is the issuer of v1 tokens (Graph's tokens are v1).
func (s *Simulator) issuerV1() string { return "https://sts.windows.net/" + s.opts.TenantID + "/" }

// handleKeys publishes the signing keys. Entra's keys are shared by all tenants, so common and
// organizations are served too.
func (s *Simulator) handleKeys(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !s.tenantMatches(tenant) && tenant != "common" && tenant != "organizations" {
		s.writeEntraError(w, r, tenantNotFound(tenant, "invalid_tenant"))
		return
	}
	writeJSON(w, http.StatusOK, s.keys.jwks())
}

// tokenResponse is the client credentials answer.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

// handleToken serves the client credentials grant: tenant, grant, client, its credential and
// the scope are checked in that order, as Entra reports the first failing one.
func (s *Simulator) handleToken(w http.ResponseWriter, r *http.Request) {
	clientID, _, basic := r.BasicAuth()
	if !basic {
		clientID = r.PostFormValue("client_id")
	}
	s.counters.tokenRequest(clientID)
	if r.Method != http.MethodPost {
		s.writeEntraError(w, r, &entraError{status: http.StatusMethodNotAllowed,
			err: "invalid_request", code: 900561,
			description: "The endpoint only accepts POST requests. Received a " + r.Method +
				" request."})
		return
	}
	app, resource, eerr := s.checkTokenRequest(r)
	if eerr != nil {
		s.writeEntraError(w, r, eerr)
		return
	}
	claims, err := s.TokenClaims(app.ClientID, resource)
	if err == nil && r.PostFormValue("client_assertion") != "" {
		claims["appidacr"], claims["azpacr"] = "2", "2"
	}
	var token string
	if err == nil {
		token, err = s.keys.mint(claims, MintOptions{})
	}
	if err != nil {
		http.Error(w, "issue token", http.StatusInternalServerError)
		return
	}
	s.counters.tokenIssued()
	w.Header().Set("Cache-Control", "no-store, no-cache")
	lifetime := int64(s.opts.TokenLifetime / time.Second)
	writeJSON(w, http.StatusOK, tokenResponse{TokenType: "Bearer", ExpiresIn: lifetime,
		ExtExpiresIn: lifetime, AccessToken: token})
}

// checkTokenRequest returns the authenticated app and the resource it asked for.
func (s *Simulator) checkTokenRequest(r *http.Request) (App, string, *entraError) {
	if tenant := r.PathValue("tenant"); !s.tenantMatches(tenant) {
		return App{}, "", tenantNotFound(tenant, "invalid_request")
	}
	if grant := r.PostFormValue("grant_type"); grant != "client_credentials" {
		return App{}, "", &entraError{status: http.StatusBadRequest,
			err: "unsupported_grant_type", code: 70003,
			description: fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant)}
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if clientID == "" {
		return App{}, "", missingParameter("client_id")
	}
	app, known := s.apps[strings.ToLower(clientID)]
	if !known {
		return App{}, "", &entraError{status: http.StatusBadRequest, err: "unauthorized_client",
			code: 700016, description: fmt.Sprintf("Application with identifier '%s' was not "+
				"found in the directory '%s'. This can happen if the application has not been "+
				"installed by the administrator of the tenant or consented to by any user in the "+
				"tenant. You may have sent your authentication request to the wrong tenant.",
				clientID, s.opts.TenantID)}
	}
	if eerr := s.checkClientCredential(r, app, secret); eerr != nil {
		return App{}, "", eerr
	}
	resource, eerr := s.checkScope(r.PostFormValue("scope"))
	return app, resource, eerr
}

// checkClientCredential verifies a client secret or a client assertion.
func (s *Simulator) checkClientCredential(r *http.Request, app App, secret string) *entraError {
	assertion := r.PostFormValue("client_assertion")
	switch {
	case secret != "":
		if app.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(app.Secret)) != 1 {
			return &entraError{status: http.StatusUnauthorized, err: "invalid_client",
				code: 7000215, description: fmt.Sprintf("Invalid client secret provided. Ensure "+
					"the secret being sent in the request is the client secret value, not the "+
					"client secret ID, for a secret added to app '%s'.", app.ClientID)}
		}
		return nil
	case assertion != "":
		return s.checkClientAssertion(r, app, assertion)
	default:
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 7000218,
			description: "The request body must contain the following parameter: " +
				"'client_assertion' or 'client_secret'."}
	}
}

func missingParameter(name string) *entraError {
	return &entraError{status: http.StatusBadRequest, err: "invalid_request", code: 900144,
		description: fmt.Sprintf("The request body must contain the following parameter: '%s'.",
			name)}
}

// checkScope requires exactly one resource/.default scope (OIDC scopes MSAL may add are
// ignored) naming Graph or the gateway's API, and returns the token audience.
func (s *Simulator) checkScope(scope string) (string, *entraError) {
	var scopes []string
	for _, sc := range strings.Fields(scope) {
		if !slices.Contains([]string{"openid", "profile", "offline_access"}, sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		return "", missingParameter("scope")
	}
	resource, isDefault := strings.CutSuffix(scopes[0], "/.default")
	if len(scopes) > 1 || !isDefault {
		return "", &entraError{status: http.StatusBadRequest, err: "invalid_scope", code: 1002012,
			description: fmt.Sprintf("The provided value for scope %s is not valid. Client "+
				"credential flows must have a scope value with /.default suffixed to the "+
				"resource identifier (application ID URI).", scope)}
	}
	switch strings.TrimSuffix(strings.ToLower(resource), "/") {
	case GraphResource, GraphAppID, "https://graph.microsoft.com/beta":
		return GraphResource, nil
	case GatewayAppIDURI, GatewayAppID, "api://" + GatewayAppID:
		return GatewayAppID, nil
	}
	return "", &entraError{status: http.StatusBadRequest, err: "invalid_resource", code: 500011,
		description: fmt.Sprintf("The resource principal named %s was not found in the tenant "+
			"named %s. This can happen if the application has not been installed by the "+
			"administrator of the tenant or consented to by any user in the tenant. You might "+
			"have sent your authentication request to the wrong tenant.", resource,
			s.opts.TenantID)}
}

// TokenClaims returns the claims the token endpoint would issue now to clientID for resource
// (GraphResource or GatewayAppID), so that tests can alter them and sign with MintToken.
// Graph tokens are v1 (issuer sts.windows.net, roles = GraphRoles); gateway tokens are v2
// (issuer Issuer(), aud GatewayAppID, roles = GatewayRoles). Both carry appid and azp.
func (s *Simulator) TokenClaims(clientID, resource string) (map[string]any, error) {
	app, ok := s.apps[strings.ToLower(clientID)]
	if !ok {
		return nil, fmt.Errorf("token claims: unknown client %q", clientID)
	}
	now := time.Now()
	oid := uuid.NewSHA1(uuid.NameSpaceOID, []byte(s.opts.TenantID+"/"+app.ClientID)).String()
	claims := map[string]any{
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.opts.TokenLifetime).Unix(),
		"tid": s.opts.TenantID, "appid": app.ClientID, "azp": app.ClientID,
		"appidacr": "1", "azpacr": "1", "idtyp": "app", "oid": oid, "sub": oid,
		"uti": strings.ReplaceAll(uuid.NewString(), "-", "")[:22],
	}
	var roles []string
	switch resource {
	case GraphResource, GraphAppID:
		claims["aud"], claims["iss"], claims["ver"] = GraphResource, s.issuerV1(), "1.0"
		roles = app.GraphRoles
	case GatewayAppID, GatewayAppIDURI:
		claims["aud"], claims["iss"], claims["ver"] = GatewayAppID, s.Issuer(), "2.0"
		roles = app.GatewayRoles
	default:
		return nil, fmt.Errorf("token claims: unknown resource %q", resource)
	}
	if len(roles) > 0 {
		claims["roles"] = slices.Clone(roles)
	}
	return claims, nil
}
