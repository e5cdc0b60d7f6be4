package graphclient

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"tunnelgateway/internal/config"
)

// WriteRole is the Graph application permission a PATCH of a tunnel server needs.
const WriteRole = "DeviceManagementConfiguration.ReadWrite.All"

// NewCredential builds the azidentity credential the settings select (see
// config.GraphConfig.Credential). transport carries the token requests; nil means the
// SDK's default client.
func NewCredential(g config.GraphConfig, transport policy.Transporter) (azcore.TokenCredential, error) {
	opts := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: g.AuthorityHost},
		Transport: transport,
	}

	switch g.Credential() {
	case "managed-identity":
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if g.ClientID != "" {
			o.ID = azidentity.ClientID(g.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(o)

	case "client-secret":
		return azidentity.NewClientSecretCredential(g.TenantID, g.ClientID, g.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{
				ClientOptions:            opts,
				DisableInstanceDiscovery: g.DisableInstanceDiscovery,
			})

	case "client-certificate":
		certs, key, err := readCertificate(g.CertificatePath, g.CertificatePassword)
		if err != nil {
			return nil, err
		}
		return azidentity.NewClientCertificateCredential(g.TenantID, g.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{
				ClientOptions:            opts,
				DisableInstanceDiscovery: g.DisableInstanceDiscovery,
			})

	case "workload-identity":
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions:            opts,
			ClientID:                 g.ClientID,
			TenantID:                 g.TenantID,
			TokenFilePath:            g.FederatedTokenFile,
			DisableInstanceDiscovery: g.DisableInstanceDiscovery,
		})
	}
	return nil, errors.New("no Graph credential configured")
}

func readCertificate(path, password string) ([]*x509.Certificate, crypto.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read AZURE_CLIENT_CERTIFICATE_PATH: %w", err)
	}
	var pw []byte
	if password != "" {
		pw = []byte(password)
	}
	certs, key, err := azidentity.ParseCertificates(data, pw)
	if err != nil {
		// The parser's message names the problem (no key, wrong password) without the data.
		return nil, nil, fmt.Errorf("parse AZURE_CLIENT_CERTIFICATE_PATH %s: %w", path, err)
	}
	return certs, key, nil
}

// TokenInfo is what the gateway may know about its own Graph token: never the token itself.
type TokenInfo struct {
	Roles     []string
	ExpiresOn time.Time
}

// HasWriteRole reports whether the token carries the permission a PATCH needs.
func (t TokenInfo) HasWriteRole() bool { return slices.Contains(t.Roles, WriteRole) }

// CheckToken gets a Graph token and reads its roles claim. The token's signature is Graph's
// business; this only reads the payload to warn early about a missing permission.
func CheckToken(ctx context.Context, cred azcore.TokenCredential, scope string) (TokenInfo, error) {
	// azcore's bearer policy always asks for a CAE-capable token, and azidentity caches CAE
	// and plain tokens apart: ask for the same kind, so this token is the one requests reuse.
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope},
		EnableCAE: true})
	if err != nil {
		return TokenInfo{}, &CredentialError{Err: err}
	}
	info := TokenInfo{ExpiresOn: tok.ExpiresOn}

	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		return info, errors.New("graph token is not a JWT; cannot read its roles")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return info, errors.New("graph token payload is not base64url; cannot read its roles")
	}
	var claims struct {
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return info, errors.New("graph token payload is not JSON; cannot read its roles")
	}
	info.Roles = claims.Roles
	return info, nil
}
