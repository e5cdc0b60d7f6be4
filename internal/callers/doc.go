// Package callers authenticates the gateway's callers: Entra ID bearer tokens checked against
// the tenant's published keys, and API keys compared against configured SHA-256 hashes.
//
// # Entra ID tokens
//
// New reads {AuthorityHost}/{TenantID}/v2.0/.well-known/openid-configuration once, then keeps
// the key set named by its jwks_uri fresh: in the background, and on demand when a token
// names a kid it does not know (at most once per UnknownKeyRefreshInterval), so a rotated
// signing key is picked up without a restart. A token is accepted only if it is RS256 signed
// by a published key, was issued by the discovered issuer for the configured tenant (tid),
// names one of Config.Audiences in aud, is within exp, nbf and iat (with Config.Leeway),
// carries a client application id (azp, or appid in v1 tokens) and holds Config.RequiredRole
// in roles. The caller's ID is that application id; its Name, the one logs and audit events
// show, comes from the caller policy, which is the only place that knows it.
//
// The gateway's app registration must therefore:
//
//   - issue v2 access tokens (requestedAccessTokenVersion 2 in its manifest), since the issuer
//     checked is the v2.0 one;
//   - define the app role (TunnelServers.Write by default) with allowed member type
//     Application only, so that the role reaches app-only tokens and never a user's token;
//   - have its application id and/or App ID URI listed in Config.Audiences.
//
// A caller's app is then granted the role (with admin consent) and asks for a token with the
// scope "{App ID URI}/.default".
//
// # API keys
//
// A key is presented in X-Api-Key and known to the gateway only by its SHA-256, supplied by a
// KeySource (the policy store). Generate one with
//
//	KEY=$(openssl rand -hex 32)
//	printf %s "$KEY" | sha256sum
//
// or GenerateAPIKey. A presented key is hashed and compared with every configured hash in
// constant time.
//
// # Failures
//
// Authenticate returns an *Error whose Reason is stable, whose Detail is safe to show to the
// caller, and whose Challenge is the WWW-Authenticate value of RFC 6750. Neither ever holds
// the token or key presented.
package callers
