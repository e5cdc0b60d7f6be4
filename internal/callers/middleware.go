package callers

import (
	"errors"

	"github.com/gin-gonic/gin"
)

// GinKey is the gin context key under which Middleware stores the Caller.
const GinKey = "tunnelgateway.caller"

// Middleware authenticates each request before the handlers run. On success it stores the
// Caller in the request's context (FromContext) and under GinKey. On failure it sets the
// WWW-Authenticate challenge, records the *Error with c.Error and aborts with its status,
// leaving the body to the router's error writer, or calls fail instead when fail is not nil.
func Middleware(a *Authenticator, fail func(c *gin.Context, err *Error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		caller, err := a.Authenticate(c.Request)
		if err != nil {
			var authErr *Error
			errors.As(err, &authErr)
			if fail != nil {
				fail(c, authErr)
				c.Abort()
				return
			}
			if challenge := authErr.Challenge(); challenge != "" {
				c.Header("WWW-Authenticate", challenge)
			}
			_ = c.AbortWithError(authErr.Status, authErr)
			return
		}
		c.Set(GinKey, caller)
		c.Request = c.Request.WithContext(WithCaller(c.Request.Context(), caller))
		c.Next()
	}
}

// CallerFrom returns the Caller Middleware stored in c.
func CallerFrom(c *gin.Context) (Caller, bool) {
	v, ok := c.Get(GinKey)
	if !ok {
		return Caller{}, false
	}
	caller, ok := v.(Caller)
	return caller, ok
}
