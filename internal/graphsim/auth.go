package graphsim

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// graphClockSkew is the clock skew Graph tolerates on nbf and exp.
const graphClockSkew = 5 * time.Minute

// principal is the app a Graph token speaks for.
type principal struct {
	appID string
	roles []string
}

// authenticate checks the bearer token as Graph does: signature against the published keys,
// audience Graph, an issuer of the tenant, lifetime with 5 minutes of skew.
func (s *Simulator) authenticate(r *http.Request) (principal, *graphError) {
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return principal{}, unauthorized("Access token is empty.")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(graphClockSkew),
	).ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, ok := s.keys.publicKey(kid)
		if !ok {
			return nil, errors.New("unknown kid")
		}
		return key, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return principal{}, unauthorized("CompactToken parsing failed with error code: 80049217")
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return principal{}, unauthorized("Lifetime validation failed, the token is expired.")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return principal{}, unauthorized("Lifetime validation failed, the token is not yet valid.")
	case err != nil:
		return principal{}, unauthorized("Access token validation failure.")
	}
	return s.principalFrom(claims)
}

// principalFrom checks audience, issuer and tenant and reads the app and its roles.
func (s *Simulator) principalFrom(claims jwt.MapClaims) (principal, *graphError) {
	if !audienceIncludes(claims, GraphResource, GraphAppID) {
		return principal{}, unauthorized("Access token validation failure. Invalid audience.")
	}
	iss, _ := claims.GetIssuer()
	tid, _ := claims["tid"].(string)
	if (iss != s.issuerV1() && iss != s.Issuer()) || !s.tenantMatches(tid) {
		return principal{}, unauthorized("Access token validation failure. Invalid issuer.")
	}
	appID, _ := claims["appid"].(string)
	if appID == "" {
		appID, _ = claims["azp"].(string)
	}
	var roles []string
	if list, ok := claims["roles"].([]any); ok {
		for _, role := range list {
			if name, ok := role.(string); ok {
				roles = append(roles, name)
			}
		}
	}
	return principal{appID: appID, roles: roles}, nil
}

// authorize requires one of the roles Graph accepts for the method: Read.All or ReadWrite.All
// to read, ReadWrite.All to write.
func authorize(p principal, method string) *graphError {
	accepted := []string{RoleReadAll, RoleReadWriteAll}
	if method != http.MethodGet {
		accepted = []string{RoleReadWriteAll}
	}
	for _, role := range accepted {
		if slices.Contains(p.roles, role) {
			return nil
		}
	}
	return newIntuneError(http.StatusForbidden, "Forbidden", "Application is not authorized to "+
		"perform this operation. Application must have one of the following scopes: "+
		strings.Join(accepted, ", "))
}

func unauthorized(message string) *graphError {
	return newGraphError(http.StatusUnauthorized, "InvalidAuthenticationToken", message)
}

// graphAuthenticateHeader is Graph's WWW-Authenticate challenge, pointing at this authority.
func (s *Simulator) graphAuthenticateHeader() string {
	return `Bearer realm="", authorization_uri="` + s.url + `/common/oauth2/authorize", ` +
		`client_id="` + GraphAppID + `"`
}
