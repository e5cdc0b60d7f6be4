package graphsim

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// checkClientAssertion verifies a client assertion. A token of an external issuer goes to
// checkFederatedAssertion; a certificate credential's JWT is checked here: the certificate
// thumbprint in x5t or x5t#S256, the signature against the registered certificate, the
// audience (the token endpoint), iss and sub (the client id) and the time window.
func (s *Simulator) checkClientAssertion(r *http.Request, app App, assertion string) *entraError {
	if t := r.PostFormValue("client_assertion_type"); t != jwtBearerAssertionType {
		return &entraError{status: http.StatusBadRequest, err: "invalid_request", code: 700026,
			description: fmt.Sprintf("Client assertion type '%s' is not supported.", t)}
	}

	// Both kinds of assertion are JWTs; which kind it is decides whose keys verify it.
	unverified := jwt.MapClaims{}
	token, _, err := jwt.NewParser().ParseUnverified(assertion, unverified)
	if err != nil {
		return malformedAssertion()
	}
	if isFederatedAssertion(app, token.Header, unverified) {
		return s.checkFederatedAssertion(r.Context(), app, assertion, token.Header, unverified)
	}

	if app.Certificate == nil {
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 700027,
			description: "The certificate used to sign the client assertion is not registered " +
				"on application '" + app.ClientID + "'."}
	}
	tokenEndpoint := s.url + "/" + r.PathValue("tenant") + "/oauth2/v2.0/token"
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "PS256"}),
		jwt.WithIssuer(app.ClientID),
		jwt.WithSubject(app.ClientID),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Minute),
	).ParseWithClaims(assertion, claims, func(t *jwt.Token) (any, error) {
		if !thumbprintMatches(t.Header, app) {
			return nil, errUnregisteredCertificate
		}
		return app.Certificate.PublicKey, nil
	})
	if err != nil {
		return assertionError(app, err)
	}
	if !audienceIncludes(claims, tokenEndpoint, s.url+"/"+r.PathValue("tenant")) {
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 700021,
			description: "Client assertion audience claim does not match Realm issuer. " +
				"Review the documentation at https://aka.ms/certCreds."}
	}
	return nil
}

var errUnregisteredCertificate = errors.New("certificate not registered")

// thumbprintMatches compares the header's certificate thumbprint with the registered one.
func thumbprintMatches(header map[string]any, app App) bool {
	sum256 := sha256.Sum256(app.Certificate.Raw)
	sum1 := sha1.Sum(app.Certificate.Raw)
	for name, want := range map[string][]byte{"x5t#S256": sum256[:], "x5t": sum1[:]} {
		got, _ := header[name].(string)
		if got == "" {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
			if decoded, err := enc.DecodeString(got); err == nil && string(decoded) == string(want) {
				return true
			}
		}
	}
	return false
}

func assertionError(app App, err error) *entraError {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 700024,
			description: "Client assertion is not within its valid time range."}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return malformedAssertion()
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidSubject):
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 700023,
			description: "Client assertion contains an invalid issuer or subject; both must be " +
				"the client id '" + app.ClientID + "'."}
	default:
		return &entraError{status: http.StatusUnauthorized, err: "invalid_client", code: 700027,
			description: "Client assertion failed signature validation, or the certificate used " +
				"to sign it is not registered on application '" + app.ClientID + "'."}
	}
}

func malformedAssertion() *entraError {
	return &entraError{status: http.StatusBadRequest, err: "invalid_request", code: 50027,
		description: "JWT token is invalid or malformed."}
}

// audienceIncludes reports whether aud (a string or a list) names one of the accepted values.
func audienceIncludes(claims jwt.MapClaims, accepted ...string) bool {
	aud, err := claims.GetAudience()
	if err != nil {
		return false
	}
	for _, a := range aud {
		for _, want := range accepted {
			if strings.EqualFold(strings.TrimSuffix(a, "/"), want) {
				return true
			}
		}
	}
	return false
}
