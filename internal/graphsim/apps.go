package graphsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Fixed identities of the default tenant. They are demo values, never real Entra ids, and are
// stable so that tests, scripts and the gateway's --demo mode can hard-code them.
const (
	// DefaultTenantID is the only tenant the simulator knows unless Options.TenantID says otherwise.
	DefaultTenantID = "8a2c5e1f-3b4d-4c6e-9f70-1a2b3c4d5e6f"

	// DefaultClientID is the gateway's own app: DeviceManagementConfiguration.ReadWrite.All on Graph.
	DefaultClientID     = "3f1d7c2a-9b8e-4a6f-8c5d-2e1f0a9b8c7d"
	DefaultClientSecret = "gws8Q~demo-gateway-secret-not-for-production"

	// ReadOnlyClientID is an app holding only DeviceManagementConfiguration.Read.All.
	ReadOnlyClientID     = "5b6c7d8e-1f2a-4b3c-9d4e-6f7a8b9c0d1e"
	ReadOnlyClientSecret = "gws8Q~demo-read-only-secret"

	// NoRoleClientID is an app with no role on Graph or on the gateway.
	NoRoleClientID     = "6c7d8e9f-2a3b-4c5d-8e6f-7a8b9c0d1e2f"
	NoRoleClientSecret = "gws8Q~demo-no-role-secret"

	// PortalClientID is a caller of the gateway holding the gateway role TunnelServers.Write.
	PortalClientID     = "7d8e9fa0-3b4c-4d5e-9f70-8b9c0d1e2f3a"
	PortalClientSecret = "gws8Q~demo-portal-secret"

	// NoGatewayRoleClientID is a caller of the gateway that was granted no gateway role.
	NoGatewayRoleClientID     = "8e9fa0b1-4c5d-4e6f-8a71-9c0d1e2f3a4b"
	NoGatewayRoleClientSecret = "gws8Q~demo-no-gateway-role-secret"

	// CertificateClientID is reserved for a certificate app a test registers itself with
	// NewCertificateApp; DefaultApps does not include it because its key is made at run time.
	CertificateClientID = "9fa0b1c2-5d6e-4f70-9b82-0d1e2f3a4b5c"

	// DefaultSiteID is the seeded site holding the Graph page's example server.
	DefaultSiteID = "2a7c1b9e-4d3f-4e8a-9b6c-5d4e3f2a1b0c"
	// SecondSiteID is a second seeded site, so that listing and authorization by site can be tested.
	SecondSiteID = "3b8d2caf-5e4a-4f9b-8c7d-6e5f4a3b2c1d"
	// ExampleServerID is the server id used in the Graph page's example response.
	ExampleServerID = "b5cf0aee-0aee-b5cf-ee0a-cfb5ee0acfb5"

	// GatewayAppIDURI is the application id URI of the gateway's own API: callers ask for
	// GatewayAppIDURI + "/.default" and get a token whose aud is GatewayAppID.
	GatewayAppIDURI = "api://tunnel-gateway"
	// GatewayAppID is the application (client) id of the gateway's API registration.
	GatewayAppID = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"

	// GraphResource is the Graph resource URI; GraphAppID is Graph's well-known application id.
	GraphResource = "https://graph.microsoft.com"
	GraphAppID    = "00000003-0000-0000-c000-000000000000"

	// Graph application permissions that matter for tunnel servers, and the gateway's own role.
	RoleReadWriteAll     = "DeviceManagementConfiguration.ReadWrite.All"
	RoleReadAll          = "DeviceManagementConfiguration.Read.All"
	GatewayRoleWrite     = "TunnelServers.Write"
	defaultTokenLifetime = time.Hour
)

// App is an app registration in the simulated tenant with its service principal's grants.
type App struct {
	ClientID string
	// Secret is the client secret; empty when the app authenticates only with a certificate.
	Secret string
	// Certificate verifies client_assertion JWTs; nil when the app uses only a secret.
	Certificate *x509.Certificate
	// FederatedCredentials name the external tokens (workload identity) that stand for the app
	// when sent as client_assertion; see NewWorkloadIdentityApp.
	FederatedCredentials []FederatedCredential
	// GraphRoles are application permissions on Microsoft Graph (the roles claim of Graph tokens).
	GraphRoles []string
	// GatewayRoles are app roles on the gateway's API, issued when the app asks for
	// GatewayAppIDURI + "/.default".
	GatewayRoles []string
}

// DefaultApps returns the apps registered when Options.Apps is empty: the gateway
// (ReadWrite.All), a read-only app, an app with no role, a portal caller of the gateway and a
// caller without a gateway role. All use secrets.
func DefaultApps() []App {
	return []App{
		{ClientID: DefaultClientID, Secret: DefaultClientSecret, GraphRoles: []string{RoleReadWriteAll}},
		{ClientID: ReadOnlyClientID, Secret: ReadOnlyClientSecret, GraphRoles: []string{RoleReadAll}},
		{ClientID: NoRoleClientID, Secret: NoRoleClientSecret},
		{ClientID: PortalClientID, Secret: PortalClientSecret, GatewayRoles: []string{GatewayRoleWrite}},
		{ClientID: NoGatewayRoleClientID, Secret: NoGatewayRoleClientSecret},
	}
}

// NewCertificateApp makes a self-signed RSA certificate and returns an App that authenticates
// with it, plus the private key a client signs its assertion with. Register the App through
// Options.Apps (for example append it to DefaultApps()).
func NewCertificateApp(clientID string, graphRoles []string) (App, *rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return App{}, nil, fmt.Errorf("generate client key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "graphsim client " + clientID},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return App{}, nil, fmt.Errorf("create client certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return App{}, nil, fmt.Errorf("parse client certificate: %w", err)
	}
	return App{ClientID: clientID, Certificate: cert, GraphRoles: graphRoles}, key, nil
}

// indexApps checks the registrations and indexes them by lower-case client id.
func indexApps(apps []App) (map[string]App, error) {
	var problems []error
	byID := make(map[string]App, len(apps))
	for i, app := range apps {
		id := strings.ToLower(app.ClientID)
		switch {
		case id == "":
			problems = append(problems, fmt.Errorf("app %d: client id is empty", i))
		case app.Secret == "" && app.Certificate == nil && len(app.FederatedCredentials) == 0:
			problems = append(problems, fmt.Errorf("app %q: needs a secret, a certificate or "+
				"a federated credential", id))
		case byID[id].ClientID != "":
			problems = append(problems, fmt.Errorf("app %q: registered twice", id))
		default:
			var err error
			app.FederatedCredentials, err = withFederationDefaults(app.FederatedCredentials)
			if err != nil {
				problems = append(problems, fmt.Errorf("app %q: %w", id, err))
				continue
			}
			byID[id] = app
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("invalid apps: %w", err)
	}
	return byID, nil
}

// withFederationDefaults copies the credentials, filling in the default audience, and
// requires a subject: Entra rejects a federated credential without one.
func withFederationDefaults(creds []FederatedCredential) ([]FederatedCredential, error) {
	out := make([]FederatedCredential, 0, len(creds))
	for i, c := range creds {
		if c.Subject == "" {
			return nil, fmt.Errorf("federated credential %d (%q): subject is empty", i, c.Name)
		}
		if len(c.Audiences) == 0 {
			c.Audiences = []string{DefaultFederatedAudience}
		} else {
			c.Audiences = slices.Clone(c.Audiences)
		}
		out = append(out, c)
	}
	return out, nil
}
