package graphclient_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/graphsim"
)

// TestListFollowsNextLink lists with a page size of 1 and 2 and checks every item arrives
// once, in as many pages as the simulator cut.
func TestListFollowsNextLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pageSize  int
		wantPages int
	}{
		{name: "one per page", pageSize: 1, wantPages: 3},
		{name: "two per page", pageSize: 2, wantPages: 2},
		{name: "one page", pageSize: 100, wantPages: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{PageSize: tt.pageSize})
			c := newClient(t, sim, clientSetup{})

			list, err := c.ListServers(testContext(t, 10*time.Second), siteID, newID())
			if err != nil {
				t.Fatalf("ListServers: %v", err)
			}
			if list.Pages != tt.wantPages {
				t.Errorf("pages: got %d, want %d", list.Pages, tt.wantPages)
			}
			ids := map[string]bool{}
			for _, raw := range list.Values {
				var item struct{ ID string }
				if err := json.Unmarshal(raw, &item); err != nil {
					t.Fatal(err)
				}
				ids[item.ID] = true
			}
			if got, want := len(ids), len(graphsim.DefaultSeed()[0].Servers); got != want ||
				len(list.Values) != want {
				t.Errorf("distinct servers: got %d of %d values, want %d", got, len(list.Values), want)
			}
			if !strings.Contains(list.Context, "microsoftTunnelServers") {
				t.Errorf("@odata.context: got %q, want the first page's", list.Context)
			}
		})
	}
}

// TestListPageBound checks that a list longer than MaxListPages is refused, not truncated.
func TestListPageBound(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{PageSize: 1})
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.MaxListPages = 2
	}})

	list, err := c.ListServers(testContext(t, 10*time.Second), siteID, newID())
	var tooLong *graphclient.ListTooLongError
	if !errors.As(err, &tooLong) {
		t.Fatalf("ListServers: got %v (list %v), want *ListTooLongError", err, list)
	}
	if tooLong.Pages != 2 {
		t.Errorf("Pages: got %d, want 2", tooLong.Pages)
	}
	if got := sim.Counters().Count(http.MethodGet, graphsim.RouteServers, 200); got != 2 {
		t.Errorf("pages fetched: got %d, want 2 (none past the bound)", got)
	}
}

// TestListRefusesForeignNextLink rewrites the simulator's nextLink to other hosts, schemes
// and paths at a server in front, and checks the client follows none of them.
func TestListRefusesForeignNextLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rewrite func(link, frontHost string) string
	}{
		{name: "another host", rewrite: func(link, front string) string {
			return strings.Replace(link, front, "evil.example.test", 1)
		}},
		{name: "plain http", rewrite: func(link, _ string) string {
			return strings.Replace(link, "https://", "http://", 1)
		}},
		{name: "another path", rewrite: func(link, _ string) string {
			return strings.Replace(link, "microsoftTunnelServers", "microsoftTunnelSites", 1)
		}},
		{name: "credentials in the link", rewrite: func(link, _ string) string {
			return strings.Replace(link, "https://", "https://user:secret@", 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{PageSize: 1})
			var frontHost string
			f := startFront(t, sim, func(resp *http.Response) error {
				return rewriteNextLink(resp, sim.URL(), "https://"+frontHost, func(link string) string {
					return tt.rewrite(link, frontHost)
				})
			})
			frontHost = strings.TrimPrefix(f.server.URL, "https://")
			c := newClient(t, sim, clientSetup{baseURL: f.graphBase(), httpClient: f.server.Client()})

			_, err := c.ListServers(testContext(t, 10*time.Second), siteID, newID())
			var ule *graphclient.UnexpectedLinkError
			if !errors.As(err, &ule) {
				t.Fatalf("ListServers: got %v, want *UnexpectedLinkError", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error message repeats the link's credentials: %v", err)
			}
			if got := len(f.requests()); got != 1 {
				t.Errorf("requests at the front: got %d, want 1 (the link not followed)", got)
			}
		})
	}
}

// rewriteNextLink points the simulator's nextLink at the front, then applies change.
func rewriteNextLink(resp *http.Response, simURL, frontURL string,
	change func(string) string) error {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	var page map[string]any
	if json.Unmarshal(body, &page) == nil {
		if link, ok := page["@odata.nextLink"].(string); ok {
			page["@odata.nextLink"] = change(strings.Replace(link, simURL, frontURL, 1))
			body, _ = json.Marshal(page)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// TestPathIDsMustBeGUIDs checks that ids which are not GUIDs are refused before any request,
// whatever the caller checked: this is where Graph URLs are built.
func TestPathIDsMustBeGUIDs(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	c := newClient(t, sim, clientSetup{})
	ctx := testContext(t, 10*time.Second)
	bad := []struct {
		name, site, server string
	}{
		{name: "traversal in server", site: siteID, server: "../../microsoftTunnelSites"},
		{name: "query in site", site: siteID + "?$select=id", server: serverID},
		{name: "empty server", site: siteID, server: ""},
		{name: "GUID with braces", site: "{" + siteID + "}", server: serverID},
		{name: "encoded slash", site: siteID, server: "b5cf0aee%2F0aee"},
		{name: "GUID with trailing newline", site: siteID, server: serverID + "\n"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.PatchServer(ctx, tt.site, tt.server, patchBody("x"), newID()); err == nil {
				t.Error("PatchServer: got success, want an id error")
			}
			if _, err := c.GetServer(ctx, tt.site, tt.server, newID()); err == nil {
				t.Error("GetServer: got success, want an id error")
			}
			if tt.server == serverID {
				if _, err := c.ListServers(ctx, tt.site, newID()); err == nil {
					t.Error("ListServers: got success, want an id error")
				}
			}
		})
	}
	if got := len(sim.Counters().Requests); got != 0 {
		t.Errorf("requests the simulator received: %v, want none", sim.Counters().Requests)
	}
}

// TestListCountsAttemptsOfEveryPage checks that a list reports the tries of all its pages,
// retries included, apart from its page count, and that a list failing on a later page
// reports the tries of the pages before it too.
func TestListCountsAttemptsOfEveryPage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		sequence     []string
		wantPages    int
		wantAttempts int
		wantErr      bool
	}{
		{name: "no retries", wantPages: 3, wantAttempts: 3},
		{name: "second page retried", sequence: []string{"ok", "503", "ok", "ok"},
			wantPages: 3, wantAttempts: 4},
		{name: "last page fails after its retry", sequence: []string{"ok", "ok", "503", "503"},
			wantAttempts: 4, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{PageSize: 1,
				Faults: graphsim.Faults{Sequence: tt.sequence}})
			c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
				o.MaxRetries = 1
			}})

			list, err := c.ListServers(testContext(t, 10*time.Second), siteID, newID())
			if tt.wantErr {
				var ge *graphclient.GraphError
				if !errors.As(err, &ge) {
					t.Fatalf("ListServers: got %v, want *GraphError", err)
				}
				if ge.Attempts != tt.wantAttempts {
					t.Errorf("error attempts: got %d, want %d", ge.Attempts, tt.wantAttempts)
				}
				return
			}
			if err != nil {
				t.Fatalf("ListServers: %v", err)
			}
			if list.Pages != tt.wantPages || list.Attempts != tt.wantAttempts {
				t.Errorf("pages, attempts: got %d, %d, want %d, %d", list.Pages, list.Attempts,
					tt.wantPages, tt.wantAttempts)
			}
		})
	}
}
