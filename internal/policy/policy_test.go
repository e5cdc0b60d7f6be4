package policy_test

import (
	"errors"
	"strings"
	"testing"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/policy"
)

const (
	portalAppID = "6b1a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	westSite    = "0f6e2a54-2c1b-4f3e-9d8a-7b6c5d4e3f21"
	eastSite    = "3c2b1a09-8f7e-4d6c-b5a4-938271605f4e"
)

var (
	hashA = callers.HashAPIKey("key-a")
	hashB = callers.HashAPIKey("key-b")
)

func TestLoadExample(t *testing.T) {
	t.Parallel()
	store, err := policy.Load("testdata/policy.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	p := store.Current()
	if got, want := len(p.Grants()), 3; got != want {
		t.Errorf("grants: got %d, want %d", got, want)
	}
	keys := store.APIKeys()
	if got, want := len(keys), 2; got != want {
		t.Fatalf("api keys: got %d, want %d", got, want)
	}
	if got, want := callers.HashAPIKey("health-agent-west-key"), "ca587f79d954d55bb8886b4aea4c"+
		"430d13d0d67548422bed687a729b5c491297"; got != want {
		t.Errorf("HashAPIKey: got %s, want %s", got, want)
	}
	portal := callers.Caller{Kind: callers.KindEntra, ID: strings.ToUpper(portalAppID)}
	if got, want := p.Name(portal), "contoso-portal"; got != want {
		t.Errorf("Name(%v): got %q, want %q", portal, got, want)
	}
}

// TestParseProblems checks that each rule is reported, naming the entry, field and rule.
func TestParseProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the error, in any order
	}{
		{
			name: "unknown field",
			doc:  "callers:\n- name: a\n  appId: " + portalAppID + "\n  read: true\n  write: true\n",
			want: []string{`unknown field "write"`},
		},
		{
			name: "unknown top-level field",
			doc:  "clients: []\n",
			want: []string{`unknown field "clients"`},
		},
		{
			name: "no callers",
			doc:  "callers: []\n",
			want: []string{"callers: must list at least one caller"},
		},
		{
			name: "unknown property",
			doc:  "callers:\n- name: a\n  appId: " + portalAppID + "\n  properties: [siteId]\n",
			want: []string{`callers[0] (name "a") properties[0] "siteId": is not an updatable`},
		},
		{
			name: "id needs no grant",
			doc:  "callers:\n- name: a\n  appId: " + portalAppID + "\n  properties: [id]\n",
			want: []string{`properties[0] "id": changes nothing and needs no grant`},
		},
		{
			name: "both identities",
			doc: "callers:\n- name: a\n  appId: " + portalAppID + "\n  apiKeySha256: " + hashA +
				"\n  read: true\n",
			want: []string{`callers[0] (name "a") appId/apiKeySha256: exactly one is allowed`},
		},
		{
			name: "neither identity",
			doc:  "callers:\n- name: a\n  read: true\n",
			want: []string{"exactly one is required; neither is set"},
		},
		{
			name: "malformed app id",
			doc:  "callers:\n- name: a\n  appId: '{" + portalAppID + "}'\n  read: true\n",
			want: []string{`appId "{` + portalAppID + `}": must be a GUID`},
		},
		{
			name: "malformed hash is not echoed",
			doc:  "callers:\n- name: a\n  apiKeySha256: my-secret-key\n  read: true\n",
			want: []string{"apiKeySha256 (13 characters, not shown): must be 64 hex characters"},
		},
		{
			name: "empty grant",
			doc:  "callers:\n- name: a\n  appId: " + portalAppID + "\n  read: false\n",
			want: []string{"grant allows nothing"},
		},
		{
			name: "empty site list",
			doc:  "callers:\n- name: a\n  appId: " + portalAppID + "\n  read: true\n  sites: []\n",
			want: []string{"sites: is empty"},
		},
		{
			name: "null site list",
			doc:  "callers:\n- name: a\n  appId: " + portalAppID + "\n  read: true\n  sites:\n",
			want: []string{"sites: is empty"},
		},
		{
			name: "malformed site",
			doc: "callers:\n- name: a\n  appId: " + portalAppID + "\n  read: true\n" +
				"  sites: [west]\n",
			want: []string{`sites[0] "west": must be a site id GUID`},
		},
		{
			name: "duplicate callers",
			doc: "callers:\n" +
				"- name: a\n  appId: " + portalAppID + "\n  read: true\n" +
				"- name: a\n  apiKeySha256: " + hashA + "\n  read: true\n" +
				"- name: c\n  appId: " + strings.ToUpper(portalAppID) + "\n  read: true\n" +
				"- name: d\n  apiKeySha256: " + strings.ToUpper(hashA) + "\n  read: true\n",
			want: []string{
				`callers[1] (name "a") name "a": duplicates callers[0]`,
				`callers[2] (name "c") appId "` + strings.ToUpper(portalAppID) +
					`": duplicates callers[0]`,
				`callers[3] (name "d") apiKeySha256: duplicates the hash of callers[1]`,
				"3 problem(s)",
			},
		},
		{
			name: "every problem at once",
			doc: "callers:\n" +
				"- name: ''\n  appId: nope\n  properties: [displayName, displayName, color]\n" +
				"- name: b\n  apiKeySha256: " + hashB + "\n",
			want: []string{
				"5 problem(s)",
				"callers[0] (name \"\") name: is required",
				`appId "nope": must be a GUID`,
				`properties[1] "displayName": is listed twice`,
				`properties[2] "color": is not an updatable property`,
				`callers[1] (name "b") read/properties: grant allows nothing`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := policy.Parse([]byte(tt.doc))
			if err == nil {
				t.Fatal("Parse: got nil error, want one")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Parse error:\n%v\nwant it to contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "my-secret-key") {
				t.Errorf("Parse error echoes the apiKeySha256 value: %v", err)
			}
		})
	}
}

func TestInvalidErrorIsTyped(t *testing.T) {
	t.Parallel()
	_, err := policy.New([]policy.Grant{{Name: "a"}, {Name: "b", AppID: "x", Read: true}})
	var invalid *policy.InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("New: got %v, want an *InvalidError", err)
	}
	if got, want := len(invalid.Problems), 3; got != want {
		t.Errorf("problems: got %d, want %d: %v", got, want, err)
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	p, err := policy.New([]policy.Grant{
		{Name: "portal", AppID: portalAppID, Read: true, Properties: []string{"displayName"}},
		{Name: "agent", APIKeySHA256: hashA, Sites: policy.Sites(westSite),
			Properties: []string{"tunnelServerHealthStatus", "lastCheckinDateTime"}},
		{Name: "reader", APIKeySHA256: hashB, Read: true, Sites: policy.Sites(eastSite)},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	portal := callers.Caller{Kind: callers.KindEntra, ID: portalAppID}
	agent := callers.Caller{Kind: callers.KindAPIKey, ID: "agent"}
	reader := callers.Caller{Kind: callers.KindAPIKey, ID: "reader"}
	stranger := callers.Caller{Kind: callers.KindEntra, ID: "11111111-2222-3333-4444-555555555555"}
	// The name of an app-id entry is not an API-key identity.
	impostor := callers.Caller{Kind: callers.KindAPIKey, ID: "portal"}

	tests := []struct {
		name       string
		caller     callers.Caller
		read       bool
		site       string
		properties []string
		wantReason string // "" means allowed
		wantText   string
	}{
		{name: "portal renames", caller: portal, site: eastSite,
			properties: []string{"id", "@odata.type", "displayName"}},
		{name: "portal reads", caller: portal, read: true, site: westSite},
		{name: "portal refused property", caller: portal, site: eastSite,
			properties: []string{"displayName", "serverImageDigest"},
			wantReason: policy.ReasonPropertyRefused,
			wantText:   "caller entra:portal may not change property serverImageDigest"},
		{name: "portal refused every property named", caller: portal, site: eastSite,
			properties: []string{"agentImageDigest", "displayName", "serverImageDigest"},
			wantReason: policy.ReasonPropertyRefused,
			wantText: "caller entra:portal may not change properties agentImageDigest, " +
				"serverImageDigest"},
		{name: "agent on its site", caller: agent, site: strings.ToUpper(westSite),
			properties: []string{"tunnelServerHealthStatus", "lastCheckinDateTime"}},
		{name: "agent refused site", caller: agent, site: eastSite,
			properties: []string{"tunnelServerHealthStatus"},
			wantReason: policy.ReasonSiteNotGranted, wantText: "site " + eastSite},
		{name: "agent may not read", caller: agent, read: true, site: westSite,
			wantReason: policy.ReasonReadNotGranted},
		{name: "reader may not write", caller: reader, site: eastSite,
			properties: []string{"id"}, wantReason: policy.ReasonWriteNotGranted},
		{name: "unknown caller", caller: stranger, read: true, site: eastSite,
			wantReason: policy.ReasonUnknownCaller,
			wantText: "caller entra:11111111-2222-3333-4444-555555555555 is not in the policy: " +
				"no entry has this appId"},
		{name: "name is not an api key identity", caller: impostor, site: eastSite,
			properties: []string{"displayName"}, wantReason: policy.ReasonUnknownCaller},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tt.read {
				err = p.AuthorizeRead(tt.caller, tt.site)
			} else {
				err = p.AuthorizeWrite(tt.caller, tt.site, tt.properties)
			}
			checkDenied(t, err, tt.wantReason, tt.wantText)
		})
	}
}

func checkDenied(t *testing.T, err error, wantReason, wantText string) {
	t.Helper()
	if wantReason == "" {
		if err != nil {
			t.Fatalf("got %v, want allowed", err)
		}
		return
	}
	var denied *policy.Denied
	if !errors.As(err, &denied) {
		t.Fatalf("got %v, want a *policy.Denied", err)
	}
	if got := denied.Reason; got != wantReason {
		t.Errorf("reason: got %q, want %q", got, wantReason)
	}
	if !strings.Contains(err.Error(), wantText) {
		t.Errorf("message: got %q, want it to contain %q", err.Error(), wantText)
	}
}
