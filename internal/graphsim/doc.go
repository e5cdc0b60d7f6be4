// Package graphsim simulates the parts of Microsoft Graph (beta, Microsoft Tunnel servers) and
// Entra ID (client credentials, OIDC discovery, JWKS) that the gateway talks to, over HTTPS on
// loopback, so that tests, benchmarks and the demo run without the internet.
package graphsim
