// Package graphsim simulates the parts of Microsoft Graph (beta, Microsoft Tunnel servers) and
// Entra ID (client credentials, OIDC discovery, JWKS) that the gateway talks to, over HTTPS on
// loopback, so that tests, benchmarks and the demo run without the internet.
//
// Start it with Start(Options{}) and point clients at it: azidentity takes AuthorityHost() as
// Cloud.ActiveDirectoryAuthorityHost, DisableInstanceDiscovery true and Client() as transport;
// Graph calls go to GraphBaseURL(). One listener serves both sides (HTTP/1.1 only).
//
// # Identities and seed
//
// The tenant is DefaultTenantID. DefaultApps registers the gateway (DefaultClientID,
// DeviceManagementConfiguration.ReadWrite.All), ReadOnlyClientID (Read.All), NoRoleClientID (no
// Graph role), PortalClientID (gateway role TunnelServers.Write) and NoGatewayRoleClientID; all
// use the secrets beside them. NewCertificateApp makes a certificate app for CertificateClientID;
// NewWorkloadIdentityApp makes an app for WorkloadIdentityClientID whose federated identity
// credential trusts the simulated Kubernetes cluster's tokens for GatewayServiceAccountSubject,
// and MintServiceAccountToken writes such a token (the file AZURE_FEDERATED_TOKEN_FILE names).
// DefaultSeed holds site DefaultSiteID with the Graph page's example server ExampleServerID and
// two more servers, and site SecondSiteID with two servers. LoadSeed reads a JSON array of Site.
//
// # Behaviours reproduced, and their sources
//
// Entra ID (sources: Microsoft identity platform docs "OAuth 2.0 client credentials flow",
// "OpenID Connect discovery", "Microsoft Entra authentication and authorization error codes"
// https://learn.microsoft.com/entra/identity-platform/reference-error-codes, and MSAL Go's
// authority code, which checks that the discovery issuer shares the authority's host):
//   - GET /{tenant}/v2.0/.well-known/openid-configuration with issuer URL()/{tenant}/v2.0,
//     token_endpoint, authorization_endpoint and jwks_uri; the v1 document at
//     /{tenant}/.well-known/openid-configuration with issuer https://sts.windows.net/{tenant}/.
//   - GET /{tenant}/discovery/v2.0/keys (and /discovery/keys): RSA keys with kid, use, alg.
//     RotateSigningKey publishes the new and the previous key; new tokens carry the new kid.
//   - POST /{tenant}/oauth2/v2.0/token, grant client_credentials, with client_secret (form or
//     HTTP Basic) or client_assertion (RS256 or PS256 JWT, x5t or x5t#S256 matching the
//     registered certificate, aud the token endpoint, iss = sub = client id, within exp/nbf).
//   - Workload identity federation (sources: "Workload identity federation"
//     https://learn.microsoft.com/entra/workload-id/workload-identity-federation, "Microsoft
//     identity platform application authentication certificate credentials", the AKS workload
//     identity docs and the azure-workload-identity troubleshooting page): an App's
//     FederatedCredentials (issuer, subject, audiences, default api://AzureADTokenExchange)
//     accept a client_assertion that is a token of that issuer. Certificate assertions are told
//     apart by x5t/x5t#S256 or iss = client id. The simulator is itself such an issuer, a
//     Kubernetes cluster at ServiceAccountIssuer() (trailing slash, as AKS issuers) serving
//     .well-known/openid-configuration and openid/v1/jwks; like Entra, the token endpoint
//     fetches the issuer's discovery document and JWKS over HTTPS for every federated assertion
//     (Entra caches them). Checks in order, issuer/subject/audience matched case-sensitively:
//     typ other than JWT: 400 AADSTS5002727 (as reported by clients of Entra); app without
//     federated credential: AADSTS70021 with Assertion Issuer/Subject/Audience
//     (401 as in external-secrets#2783; 400 in 2022, azure-workload-identity#616); no
//     credential for the issuer: AADSTS700211 (azure-workload-identity#1200); issuer documents
//     unreachable: 400 AADSTS50166 (azure-workload-identity#642); kid not in the issuer's
//     JWKS: AADSTS7000272 (azure-workload-identity#1232); bad signature or algorithm:
//     AADSTS7000274 (its name, ClientAssertionContainsInvalidSignature, is public; the message
//     is modelled); outside exp/nbf with 5 minutes of skew: AADSTS700024 with current,
//     valid-from and expiry times (azure-workload-identity#693); subject: AADSTS700213
//     (Azure/login#482); audience: AADSTS700212 (message as quoted in public client test
//     fixtures). All but 5002727 and 50166 are 401 invalid_client.
//   - Errors in Entra's shape {error, error_description "AADSTSn: …\r\nTrace ID…", error_codes,
//     timestamp, trace_id, correlation_id, error_uri}: AADSTS90002 unknown tenant,
//     AADSTS700016 unknown client (400 unauthorized_client), AADSTS7000215 wrong secret
//     (401 invalid_client; message as reported publicly, e.g. Azure/sap-automation#418),
//     AADSTS7000218 no credential, AADSTS1002012 scope without /.default, AADSTS900144 missing
//     parameter, AADSTS500011 unknown resource, AADSTS70003 unsupported grant, AADSTS700027,
//     700024, 700021 and 50027 for bad client assertions.
//   - Graph tokens are v1 like Entra's Graph tokens: aud https://graph.microsoft.com,
//     iss https://sts.windows.net/{tid}/, ver 1.0, roles = the app's Graph roles. Tokens for
//     GatewayAppIDURI/.default are v2: aud GatewayAppID, iss Issuer(), ver 2.0, roles = the
//     app's gateway roles. Both carry tid, appid, azp, appidacr/azpacr (1 secret, 2
//     certificate or federated assertion), oid, sub, idtyp app, iat, nbf,
//     exp (Options.TokenLifetime), RS256 + kid.
//
// Graph (sources: the Graph page "Update microsoftTunnelServer" in ../shared/spec, the
// Graph docs "Microsoft Graph error responses and resource types"
// https://learn.microsoft.com/graph/errors, "Microsoft Graph throttling guidance" and
// "service-specific throttling limits" https://learn.microsoft.com/graph/throttling-limits,
// and the real error bodies in ../shared/cases/graph-errors):
//   - GET and PATCH /beta/deviceManagement/microsoftTunnelSites/{siteId}/
//     microsoftTunnelServers/{serverId}; GET of a site's servers, of one site and of all sites.
//     Entities carry @odata.context and @odata.type; lists are {"@odata.context", "value"} with
//     @odata.nextLink (absolute, opaque $skiptoken) when $top or Options.PageSize cuts a page.
//   - PATCH merges the given properties and answers 200 with the whole object (the page's
//     documented answer) or, with PatchNoContent, 204 (what Intune endpoints often do).
//   - Tokens checked as Graph does: missing, malformed, expired, not yet valid, badly signed
//     (unknown kid, unpublished key, alg none, HS256), wrong audience or tenant: 401
//     InvalidAuthenticationToken with Graph's WWW-Authenticate challenge (realm,
//     authorization_uri, client_id 00000003-…). 5 minutes of clock skew are tolerated.
//   - Roles: Read.All or ReadWrite.All to read, ReadWrite.All to PATCH (the page's permission
//     table); otherwise 403 Forbidden "Application is not authorized to perform this
//     operation. Application must have one of the following scopes: …" (Intune's wording).
//   - Unknown site or server: 404 ResourceNotFound. Unknown path segment: 400 "Resource not
//     found for the segment '…'". Other methods: 405.
//   - Body validation in OData's order, first problem wins: zoneless or malformed
//     DateTimeOffset gives 400 invalidRequest "[item] Cannot convert the literal '…' to the
//     expected type 'Edm.DateTimeOffset'." (graph-errors sample); null for a non-nullable
//     property gives 400 ModelValidationFailure (graph-errors sample); unknown property,
//     wrong JSON type, object or array for a primitive, @odata.type of another type,
//     @odata.context, duplicate property, id differing from the URL, enum constant not in the
//     page's list (case-sensitive; unknownFutureValue is rejected): 400 BadRequest with
//     OData-style messages; a body that is not one JSON object, or a Content-Type other than
//     application/json: 400 "Unable to read JSON request payload…".
//   - Content-Encoding gzip request bodies (the Graph SDKs compress by default), bounded by
//     Options.MaxBodyBytes (default 4 MiB, Graph's request size limit) before and after
//     inflation: 413 beyond it; another encoding: 415.
//   - Every Graph and Entra answer has a request-id header and echoes client-request-id; Graph
//     error bodies are {"error":{"code","message","innerError":{"date","request-id",
//     "client-request-id"}}}. With IntuneErrors the message of errors Intune raises
//     (403, 404, 429, 5xx) is Intune's CRLF-indented JSON document (_version 3, Message with
//     Operation ID and Activity ID, CustomApiErrorPhrase, RetryAfter null, ErrorSourceService,
//     HttpHeaders), as in the graph-errors samples; OData validation errors keep the plain form.
//   - Throttling per the Intune service limits that cover the microsoftTunnel* resources: per
//     app per tenant 100 writes and 1000 requests, per tenant 200 writes and 2000 requests, per
//     20 s, counted in sliding windows (Limits; SetLimits; Limits{Disabled: true}). Over a
//     limit: 429 TooManyRequests "Too many requests." with Retry-After in whole seconds until a
//     slot frees, or without it (OmitRetryAfter), as Intune sometimes answers
//     (graph-errors sample and public Q&A reports of missing Retry-After).
//   - PatchNoContent, IntuneErrors and OmitRetryAfter are ResponseOptions: set in Options at
//     start, switched while running with SetResponseOptions or PUT /_simulator/options.
//   - Faults (Faults, SetFaults, admin API): added latency, 500/502/503/504 at a rate or as a
//     scripted sequence, connection reset (TCP RST, no answer), stalled response, and
//     applied-500 (the PATCH is stored, then 500 is answered, as seen with Intune). A status
//     fault answers the status's usual code (ServiceUnavailable…) or a chosen Graph error code:
//     "503:CancelledOnServiceTimeout" in the sequence, or ErrorCode beside ErrorRate.
//     CancelledOnServiceTimeout comes with Intune's timeout wording, CustomApiErrorPhrase and
//     ErrorSourceService (graph-errors sample); other codes keep the status's message.
//
// # Admin API and counters
//
// Under /_simulator, without a token: GET/PUT faults and limits (JSON, durations as "250ms"),
// GET/PUT options (the ResponseOptions {"patchNoContent", "intuneErrors", "omitRetryAfter"},
// starting from Options; a PUT replaces all three, absent ones become false), GET/DELETE
// counters, POST keys/rotate, GET sites/{siteId}/servers/{serverId}. Counters count
// Graph and Entra requests by method, route template and status, token requests (total and by
// client id), tokens issued, 429s, PATCHes applied and faults injected.
//
// # Knowingly not reproduced
//
//   - Instance discovery (/common/discovery/instance): MSAL sends it to
//     login.microsoftonline.com, not to the authority host, so clients must disable it.
//   - For federation: Entra's caching of issuer metadata, the limit of 20 federated
//     credentials per app, flexible (claims-matching) credentials, Entra-issued tokens as
//     assertions, and issuers served over HTTPS the simulator's client does not trust (it
//     trusts only its own certificate, so external issuers answer AADSTS50166).
//   - Delegated (user) flows, refresh tokens, managed identity, claims challenges, conditional
//     access, token revocation, x5c in the JWKS and certificate chains (SendCertificateChain).
//   - The exact text of OData messages other than those in the samples is modelled, not
//     captured; the plain-form 404 message and the 413/415 codes are ours.
//   - Graph's global limits, per-resource-unit costs, HTTP/2, $select/$filter/$expand (other
//     query options are ignored), ETags, batching ($batch), and creating or deleting servers.
//   - Real Graph keeps the DateTimeOffset it parsed; the simulator stores the literal as sent.
//   - Server properties beyond the page's table (for example deploymentMode) are rejected as
//     unknown, although newer beta metadata may define them.
package graphsim
