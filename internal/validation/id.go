package validation

// IDPattern is the only form a site or server id may take in a path: a GUID in 8-4-4-4-12
// hexadecimal form. openapi.yaml publishes the same pattern (components/schemas/Guid), and a
// test keeps the two equal. Anything else is refused before a Graph URL is built, so no path
// segment can climb out of the tunnel server paths.
const IDPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

// ValidID reports whether id matches IDPattern. It checks the bytes directly rather than
// running the pattern: every request checks its ids about seven times (path, audit, URL,
// client-request-id), and the regular expression took 2% of the gateway's CPU.
// FuzzValidID holds the two to the same answers.
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
