package policy

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"tunnelgateway/internal/callers"
)

// UpdatableProperties are the tunnel server properties the gateway lets callers change, and so
// the only names a grant's properties may list. They match the gateway's request schema.
var UpdatableProperties = []string{
	"displayName",
	"tunnelServerHealthStatus",
	"lastCheckinDateTime",
	"agentImageDigest",
	"serverImageDigest",
}

// ungatedProperties may appear in a body without a grant: they identify the object and change
// nothing on it.
var ungatedProperties = map[string]bool{"id": true, "@odata.type": true}

// guidPattern is the canonical 8-4-4-4-12 form only; braces, URNs and bare hex are refused so
// that one id has one spelling in the file.
var guidPattern = regexp.MustCompile(
	`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

var sha256Pattern = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Grant is one caller's entry in the policy file, as written there.
type Grant struct {
	// Name identifies the caller to humans; for an API-key caller it is also its identity.
	Name string `json:"name"`
	// AppID is the Entra ID application (client) id of a caller presenting bearer tokens.
	AppID string `json:"appId,omitempty"`
	// APIKeySHA256 is the hex SHA-256 of the key of a caller presenting X-Api-Key.
	APIKeySHA256 string `json:"apiKeySha256,omitempty"`
	// Read allows reading tunnel servers.
	Read bool `json:"read"`
	// Properties are the properties the caller may change.
	Properties []string `json:"properties,omitempty"`
	// Sites are the site ids the caller may touch; nil allows every site.
	Sites SiteList `json:"sites,omitempty"`
}

// SiteList is a grant's list of site ids. It remembers whether the file wrote the field at all,
// so that an empty or null list (a likely mistake) is told apart from an absent one (every
// site).
type SiteList struct {
	IDs     []string
	present bool
}

// Sites returns a SiteList holding ids; with no ids it allows every site.
func Sites(ids ...string) SiteList {
	return SiteList{IDs: ids, present: len(ids) > 0}
}

// UnmarshalJSON records that the field was written, then decodes the ids.
func (s *SiteList) UnmarshalJSON(data []byte) error {
	s.present = true
	return json.Unmarshal(data, &s.IDs)
}

// MarshalJSON writes the ids.
func (s SiteList) MarshalJSON() ([]byte, error) {
	return json.Marshal(s.IDs)
}

// AllSites reports whether the list places no restriction on sites.
func (s SiteList) AllSites() bool {
	return !s.present
}

// file is the document's top level.
type file struct {
	Callers []Grant `json:"callers"`
}

// Policy is a validated set of grants with lookups by caller. It is immutable once built.
type Policy struct {
	grants  []Grant
	byAppID map[string]*entry
	byKey   map[string]*entry // API-key callers by name
	apiKeys []callers.APIKey
}

// entry is a grant in the form decisions use: lowercased ids in sets.
type entry struct {
	name       string
	read       bool
	properties map[string]bool
	sites      map[string]bool // nil means every site
}

// Parse decodes and validates a policy document. Unknown fields are errors, and every problem
// in the document is reported at once in an *InvalidError.
func Parse(data []byte) (*Policy, error) {
	var f file
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	return New(f.Callers)
}

// New validates grants and builds a Policy from them, for callers that build a policy in code
// (the demo mode). Problems are reported together in an *InvalidError.
func New(grants []Grant) (*Policy, error) {
	if problems := validate(grants); len(problems) > 0 {
		return nil, &InvalidError{Problems: problems}
	}
	return build(slices.Clone(grants)), nil
}

// Grants returns a copy of the grants as written.
func (p *Policy) Grants() []Grant {
	out := make([]Grant, len(p.grants))
	copy(out, p.grants)
	return out
}

// Name returns the policy name of a caller, or "" if the policy does not know it. An Entra
// caller is known to the authenticator only by its application id; this name is the one logs,
// audit events and messages show.
func (p *Policy) Name(c callers.Caller) string {
	if e := p.lookup(c); e != nil {
		return e.name
	}
	return ""
}

// APIKeys returns the API keys the policy accepts. The slice is shared; do not modify it.
func (p *Policy) APIKeys() []callers.APIKey {
	return p.apiKeys
}

func (p *Policy) lookup(c callers.Caller) *entry {
	switch c.Kind {
	case callers.KindEntra:
		return p.byAppID[strings.ToLower(c.ID)]
	case callers.KindAPIKey:
		return p.byKey[c.ID]
	default:
		return nil
	}
}

// build indexes grants that validate has accepted.
func build(grants []Grant) *Policy {
	p := &Policy{
		grants:  grants,
		byAppID: make(map[string]*entry),
		byKey:   make(map[string]*entry),
	}
	for _, g := range grants {
		e := &entry{name: g.Name, read: g.Read, properties: make(map[string]bool)}
		for _, prop := range g.Properties {
			e.properties[prop] = true
		}
		if !g.Sites.AllSites() {
			e.sites = make(map[string]bool)
			for _, site := range g.Sites.IDs {
				e.sites[strings.ToLower(site)] = true
			}
		}
		if g.AppID != "" {
			p.byAppID[strings.ToLower(g.AppID)] = e
			continue
		}
		p.byKey[g.Name] = e
		key := callers.APIKey{Name: g.Name}
		// validate has checked the length and alphabet, so decoding cannot fail.
		_, _ = hex.Decode(key.SHA256[:], []byte(g.APIKeySHA256))
		p.apiKeys = append(p.apiKeys, key)
	}
	return p
}
