package callers

import (
	"fmt"
	"net/http"
	"strings"
)

// Reasons authentication fails. They are stable: logs, metrics and clients may match on them.
const (
	ReasonMissingCredentials   = "missing_credentials"
	ReasonMalformedHeader      = "malformed_header"
	ReasonAmbiguousCredentials = "ambiguous_credentials"
	ReasonBearerNotAccepted    = "bearer_not_accepted"
	ReasonInvalidToken         = "invalid_token"
	ReasonDisallowedAlgorithm  = "disallowed_algorithm"
	ReasonUnknownKey           = "unknown_key"
	ReasonExpired              = "expired"
	ReasonNotYetValid          = "not_yet_valid"
	ReasonWrongAudience        = "wrong_audience"
	ReasonWrongIssuer          = "wrong_issuer"
	ReasonWrongTenant          = "wrong_tenant"
	ReasonMissingIdentity      = "missing_identity"
	ReasonMissingRole          = "missing_role"
	ReasonUnknownAPIKey        = "unknown_api_key"
)

// Error is the one error Authenticate returns. Its Detail is written for the caller and never
// holds the token or key it presented.
type Error struct {
	// Status is 401 when the caller is not identified and 403 when it is identified but lacks
	// the required app role.
	Status int
	// Reason is one of the Reason constants.
	Reason string
	// Detail says what was wrong, safe to return to the caller.
	Detail string

	realm string
}

func (e *Error) Error() string {
	return fmt.Sprintf("authenticate caller: %s: %s", e.Reason, e.Detail)
}

// Challenge returns the WWW-Authenticate value to send with the response (RFC 6750 section 3):
// a bare challenge when no credentials came, error="invalid_request" for a malformed request,
// error="invalid_token" for a credential that failed, and error="insufficient_scope" for a
// missing role (403).
func (e *Error) Challenge() string {
	realm := e.realm
	if realm == "" {
		realm = DefaultRealm
	}
	challenge := "Bearer realm=" + quoteParam(realm)
	code := ""
	switch e.Reason {
	case ReasonMissingCredentials:
		return challenge
	case ReasonMalformedHeader, ReasonAmbiguousCredentials:
		code = "invalid_request"
	case ReasonMissingRole:
		code = "insufficient_scope"
	default:
		code = "invalid_token"
	}
	return fmt.Sprintf("%s, error=%q, error_description=%s", challenge, code,
		quoteParam(e.Detail))
}

// quoteParam makes s an RFC 9110 quoted-string. Details are ours and plain ASCII, but the
// escaping keeps the header well-formed whatever they hold.
func quoteParam(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (a *Authenticator) unauthorized(reason, detail string) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: reason, Detail: detail, realm: a.realm}
}

func (a *Authenticator) forbidden(reason, detail string) *Error {
	return &Error{Status: http.StatusForbidden, Reason: reason, Detail: detail, realm: a.realm}
}
