package graphsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
)

// Site is a Microsoft Tunnel site and its servers, as seeded into the store.
//
// A seed file is a JSON array of sites in this shape; each server is a microsoftTunnelServer
// object using the property names of the Graph page (id, displayName, tunnelServerHealthStatus,
// lastCheckinDateTime, agentImageDigest, serverImageDigest), validated like a PATCH body:
//
//	[{"id": "…", "displayName": "…", "servers": [{"id": "…", "displayName": "…"}]}]
type Site struct {
	ID            string           `json:"id"`
	DisplayName   string           `json:"displayName"`
	Description   string           `json:"description,omitempty"`
	PublicAddress string           `json:"publicAddress,omitempty"`
	Servers       []map[string]any `json:"servers"`
}

// DefaultSeed returns the seed used when Options.Seed is empty: site DefaultSiteID holding the
// Graph page's example server ExampleServerID and two more servers, and site SecondSiteID holding
// two servers.
func DefaultSeed() []Site {
	server := func(id, name, status, checkin string) map[string]any {
		return map[string]any{
			"id":                       id,
			"displayName":              name,
			"tunnelServerHealthStatus": status,
			"lastCheckinDateTime":      checkin,
			"agentImageDigest":         "sha256:1f0e9d8c7b6a59483726150f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5",
			"serverImageDigest":        "sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
		}
	}
	return []Site{
		{
			ID:            DefaultSiteID,
			DisplayName:   "Example site",
			Description:   "Seeded site holding the Graph page's example server",
			PublicAddress: "tunnel.example.test",
			Servers: []map[string]any{
				server(ExampleServerID, "Display Name value", "healthy",
					"2017-01-01T00:02:46.0431416-08:00"),
				server("c4d5e6f7-0a1b-4c2d-8e3f-4a5b6c7d8e9f", "tunnel-eu-west-02", "warning",
					"2024-05-01T08:30:00Z"),
				server("d5e6f7a8-1b2c-4d3e-9f4a-5b6c7d8e9fa0", "tunnel-eu-west-03", "offline",
					"2024-04-28T17:05:12.5Z"),
			},
		},
		{
			ID:            SecondSiteID,
			DisplayName:   "Second site",
			PublicAddress: "tunnel2.example.test",
			Servers: []map[string]any{
				server("e6f7a8b9-2c3d-4e4f-8a5b-6c7d8e9fa0b1", "tunnel-us-east-01", "healthy",
					"2024-05-01T08:31:00Z"),
				server("f7a8b9c0-3d4e-4f5a-9b6c-7d8e9fa0b1c2", "tunnel-us-east-02", "unhealthy",
					"2024-05-01T08:29:30Z"),
			},
		},
	}
}

// LoadSeed reads a seed file (a JSON array of Site) and validates it.
func LoadSeed(path string) ([]Site, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read seed: %w", err)
	}
	var sites []Site
	if err := json.Unmarshal(data, &sites); err != nil {
		return nil, fmt.Errorf("parse seed %s: %w", path, err)
	}
	if _, err := newStore(sites); err != nil {
		return nil, fmt.Errorf("seed %s: %w", path, err)
	}
	return sites, nil
}

// store is the in-memory state of sites and servers. Ids are matched case-insensitively, as
// Graph matches GUID keys.
type store struct {
	mu    sync.Mutex
	sites []*siteRecord
	byID  map[string]*siteRecord
}

type siteRecord struct {
	site    Site // Servers is unused here; see servers
	servers []map[string]any
	byID    map[string]int
}

// newStore validates the seed and copies it; every problem is reported together.
func newStore(seed []Site) (*store, error) {
	st := &store{byID: make(map[string]*siteRecord)}
	var problems []error
	for i, site := range seed {
		key := strings.ToLower(site.ID)
		if key == "" {
			problems = append(problems, fmt.Errorf("site %d: id is empty", i))
			continue
		}
		if st.byID[key] != nil {
			problems = append(problems, fmt.Errorf("site %q: listed twice", site.ID))
			continue
		}
		rec := &siteRecord{site: site, byID: make(map[string]int)}
		rec.site.Servers = nil
		for j, raw := range site.Servers {
			server, err := seedServer(raw)
			if err != nil {
				problems = append(problems, fmt.Errorf("site %q server %d: %w", site.ID, j, err))
				continue
			}
			id := strings.ToLower(server["id"].(string))
			if _, dup := rec.byID[id]; dup {
				problems = append(problems, fmt.Errorf("site %q server %q: listed twice", site.ID, id))
				continue
			}
			rec.byID[id] = len(rec.servers)
			rec.servers = append(rec.servers, server)
		}
		st.byID[key] = rec
		st.sites = append(st.sites, rec)
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("invalid seed: %w", err)
	}
	return st, nil
}

// seedServer validates a seeded server with the PATCH validator and returns a clean copy.
func seedServer(raw map[string]any) (map[string]any, error) {
	id, _ := raw["id"].(string)
	if id == "" {
		return nil, errors.New("id must be a non-empty string")
	}
	body, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("encode server: %w", err)
	}
	props, gerr := parseServerPatch(body, id)
	if gerr != nil {
		return nil, fmt.Errorf("%s: %s", gerr.code, gerr.message)
	}
	props["id"] = id
	return props, nil
}

// server returns a copy of one stored server.
func (st *store) server(siteID, serverID string) (map[string]any, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	site := st.byID[strings.ToLower(siteID)]
	if site == nil {
		return nil, false
	}
	i, ok := site.byID[strings.ToLower(serverID)]
	if !ok {
		return nil, false
	}
	return maps.Clone(site.servers[i]), true
}

// site returns one site's metadata.
func (st *store) site(siteID string) (Site, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.byID[strings.ToLower(siteID)]
	if rec == nil {
		return Site{}, false
	}
	return rec.site, true
}

// allSites returns every site's metadata in seed order.
func (st *store) allSites() []Site {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]Site, 0, len(st.sites))
	for _, rec := range st.sites {
		out = append(out, rec.site)
	}
	return out
}

// servers returns copies of a site's servers in seed order.
func (st *store) servers(siteID string) ([]map[string]any, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.byID[strings.ToLower(siteID)]
	if rec == nil {
		return nil, false
	}
	out := make([]map[string]any, 0, len(rec.servers))
	for _, s := range rec.servers {
		out = append(out, maps.Clone(s))
	}
	return out, true
}

// patch merges props into a stored server and returns the merged copy.
func (st *store) patch(siteID, serverID string, props map[string]any) (map[string]any, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.byID[strings.ToLower(siteID)]
	if rec == nil {
		return nil, false
	}
	i, ok := rec.byID[strings.ToLower(serverID)]
	if !ok {
		return nil, false
	}
	for k, v := range props {
		if k == "id" {
			continue // the key never changes
		}
		rec.servers[i][k] = v
	}
	return maps.Clone(rec.servers[i]), true
}
