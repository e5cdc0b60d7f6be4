package graphsim

import (
	"net/url"
	"strings"
)

func urlEncode(s string) string              { return url.QueryEscape(s) }
func join(parts []string, sep string) string { return strings.Join(parts, sep) }
