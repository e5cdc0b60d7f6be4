package graphsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSeed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		wantErr string // empty: valid
	}{
		{"valid", `[{"id":"s1","displayName":"S","servers":[{"id":"a","displayName":"A",` +
			`"tunnelServerHealthStatus":"healthy","lastCheckinDateTime":"2024-01-01T00:00:00Z"}]}]`, ""},
		{"not json", `{`, "parse seed"},
		{"site without id", `[{"displayName":"S"}]`, "id is empty"},
		{"duplicate site", `[{"id":"s"},{"id":"S"}]`, "listed twice"},
		{"server without id", `[{"id":"s","servers":[{"displayName":"A"}]}]`, "id must be"},
		{"bad enum", `[{"id":"s","servers":[{"id":"a","tunnelServerHealthStatus":"ok"}]}]`,
			"Requested value 'ok'"},
		{"unknown property", `[{"id":"s","servers":[{"id":"a","colour":"x"}]}]`, "colour"},
		{"duplicate server", `[{"id":"s","servers":[{"id":"a"},{"id":"A"}]}]`, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "seed.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			sites, err := LoadSeed(path)
			if tt.wantErr == "" {
				if err != nil || len(sites) != 1 {
					t.Fatalf("LoadSeed: got %v, %v; want one site", sites, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadSeed error: got %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := LoadSeed(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadSeed of a missing file: got nil error")
	}
}

func TestCustomSeedAndApps(t *testing.T) {
	t.Parallel()
	seed := []Site{{ID: "site-1", DisplayName: "One", Servers: []map[string]any{
		{"id": "server-1", "displayName": "first"}}}}
	apps := []App{{ClientID: "custom-app", Secret: "s3cret", GraphRoles: []string{RoleReadAll}}}
	sim := startSim(t, Options{Seed: seed, Apps: apps, TenantID: "contoso-tenant"})
	tok := graphToken(t, sim, "custom-app", "s3cret")
	resp, body := graphRequest(t, sim, "GET", serverPath("site-1", "server-1"), tok, nil, nil)
	if resp.StatusCode != 200 || decodeObject(t, body)["tunnelServerHealthStatus"] != nil {
		t.Errorf("GET seeded server: got %d %s, want 200 with unset properties as null",
			resp.StatusCode, body)
	}
	if _, err := Start(Options{Apps: []App{{ClientID: "x"}}}); err == nil {
		t.Error("Start with an app lacking credentials: got nil error")
	}
}
