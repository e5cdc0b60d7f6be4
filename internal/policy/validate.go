package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Problem is one rule a policy breaks, located by the caller entry and field.
type Problem struct {
	// Index is the entry's position in callers, from 0; -1 for a problem with the whole file.
	Index int
	// Name is the entry's name, possibly empty.
	Name string
	// Field is the field at fault, e.g. "appId" or "properties[2]".
	Field string
	// Value is the offending value, quoted; API key hashes are never echoed.
	Value string
	// Rule says what the value should be.
	Rule string
}

func (p Problem) Error() string {
	where := "policy"
	if p.Index >= 0 {
		where = fmt.Sprintf("callers[%d] (name %q)", p.Index, p.Name)
	}
	if p.Field != "" {
		where += " " + p.Field
	}
	if p.Value != "" {
		where += " " + p.Value
	}
	return where + ": " + p.Rule
}

// InvalidError lists every problem found in a policy.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("invalid policy: %d problem(s)", len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  - "+p.Error())
	}
	return strings.Join(lines, "\n")
}

// checker gathers problems across all entries, remembering ids seen so far to find duplicates.
type checker struct {
	problems []Problem
	names    map[string]int
	appIDs   map[string]int
	keys     map[string]int
}

func validate(grants []Grant) []Problem {
	c := &checker{
		names:  make(map[string]int),
		appIDs: make(map[string]int),
		keys:   make(map[string]int),
	}
	if len(grants) == 0 {
		c.add(Problem{Index: -1, Field: "callers",
			Rule: "must list at least one caller; an empty policy denies every request"})
	}
	for i, g := range grants {
		c.checkName(i, g)
		c.checkIdentity(i, g)
		c.checkProperties(i, g)
		c.checkSites(i, g)
		if !g.Read && len(g.Properties) == 0 {
			c.add(Problem{Index: i, Name: g.Name, Field: "read/properties",
				Rule: "grant allows nothing: set read: true or list at least one property"})
		}
	}
	return c.problems
}

func (c *checker) add(p Problem) {
	c.problems = append(c.problems, p)
}

func (c *checker) checkName(i int, g Grant) {
	if strings.TrimSpace(g.Name) == "" {
		c.add(Problem{Index: i, Field: "name", Rule: "is required"})
		return
	}
	if first, seen := c.names[g.Name]; seen {
		c.add(Problem{Index: i, Name: g.Name, Field: "name", Value: quote(g.Name),
			Rule: fmt.Sprintf("duplicates callers[%d]; names must be unique", first)})
		return
	}
	c.names[g.Name] = i
}

func (c *checker) checkIdentity(i int, g Grant) {
	switch {
	case g.AppID == "" && g.APIKeySHA256 == "":
		c.add(Problem{Index: i, Name: g.Name, Field: "appId/apiKeySha256",
			Rule: "exactly one is required; neither is set"})
	case g.AppID != "" && g.APIKeySHA256 != "":
		c.add(Problem{Index: i, Name: g.Name, Field: "appId/apiKeySha256",
			Rule: "exactly one is allowed; both are set"})
	case g.AppID != "":
		c.checkAppID(i, g)
	default:
		c.checkKeyHash(i, g)
	}
}

func (c *checker) checkAppID(i int, g Grant) {
	if !guidPattern.MatchString(g.AppID) {
		c.add(Problem{Index: i, Name: g.Name, Field: "appId", Value: quote(g.AppID),
			Rule: "must be a GUID like 00000000-0000-0000-0000-000000000000"})
		return
	}
	id := strings.ToLower(g.AppID)
	if first, seen := c.appIDs[id]; seen {
		c.add(Problem{Index: i, Name: g.Name, Field: "appId", Value: quote(g.AppID),
			Rule: fmt.Sprintf("duplicates callers[%d]; one entry per application", first)})
		return
	}
	c.appIDs[id] = i
}

// checkKeyHash never echoes the value: a key pasted where its hash belongs must not end up in
// logs.
func (c *checker) checkKeyHash(i int, g Grant) {
	if !sha256Pattern.MatchString(g.APIKeySHA256) {
		c.add(Problem{Index: i, Name: g.Name, Field: "apiKeySha256",
			Value: fmt.Sprintf("(%d characters, not shown)", len(g.APIKeySHA256)),
			Rule:  "must be 64 hex characters: the SHA-256 of the key, not the key itself"})
		return
	}
	hash := strings.ToLower(g.APIKeySHA256)
	if first, seen := c.keys[hash]; seen {
		c.add(Problem{Index: i, Name: g.Name, Field: "apiKeySha256",
			Rule: fmt.Sprintf("duplicates the hash of callers[%d]; give each caller its own key",
				first)})
		return
	}
	c.keys[hash] = i
}

func (c *checker) checkProperties(i int, g Grant) {
	seen := make(map[string]bool)
	for j, prop := range g.Properties {
		field := fmt.Sprintf("properties[%d]", j)
		switch {
		case ungatedProperties[prop]:
			c.add(Problem{Index: i, Name: g.Name, Field: field, Value: quote(prop),
				Rule: "changes nothing and needs no grant; remove it"})
		case !slices.Contains(UpdatableProperties, prop):
			c.add(Problem{Index: i, Name: g.Name, Field: field, Value: quote(prop),
				Rule: "is not an updatable property; allowed: " +
					strings.Join(UpdatableProperties, ", ")})
		case seen[prop]:
			c.add(Problem{Index: i, Name: g.Name, Field: field, Value: quote(prop),
				Rule: "is listed twice"})
		}
		seen[prop] = true
	}
}

func (c *checker) checkSites(i int, g Grant) {
	if g.Sites.AllSites() {
		return
	}
	if len(g.Sites.IDs) == 0 {
		c.add(Problem{Index: i, Name: g.Name, Field: "sites",
			Rule: "is empty, which would allow no site; list site ids or omit sites for all"})
		return
	}
	seen := make(map[string]bool)
	for j, site := range g.Sites.IDs {
		field := fmt.Sprintf("sites[%d]", j)
		switch {
		case !guidPattern.MatchString(site):
			c.add(Problem{Index: i, Name: g.Name, Field: field, Value: quote(site),
				Rule: "must be a site id GUID like 00000000-0000-0000-0000-000000000000"})
		case seen[strings.ToLower(site)]:
			c.add(Problem{Index: i, Name: g.Name, Field: field, Value: quote(site),
				Rule: "is listed twice"})
		}
		seen[strings.ToLower(site)] = true
	}
}

func quote(s string) string {
	return fmt.Sprintf("%q", s)
}
