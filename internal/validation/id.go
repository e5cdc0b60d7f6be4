package validation

import "regexp"

// IDPattern is the only form a site or server id may take in a path: a GUID in 8-4-4-4-12
// hexadecimal form. openapi.yaml publishes the same pattern (components/schemas/Guid), and a
// test keeps the two equal. Anything else is refused before a Graph URL is built, so no path
// segment can climb out of the tunnel server paths.
const IDPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

var idRegexp = regexp.MustCompile(IDPattern)

// ValidID reports whether id matches IDPattern.
func ValidID(id string) bool {
	return len(id) == 36 && idRegexp.MatchString(id)
}
