package graphsim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestGraphAuthentication(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	claims := func(edit func(map[string]any)) map[string]any {
		c, err := sim.TokenClaims(DefaultClientID, GraphResource)
		if err != nil {
			t.Fatal(err)
		}
		edit(c)
		return c
	}
	mint := func(c map[string]any, mode SigningMode) string {
		tok, err := sim.MintToken(c, MintOptions{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	unchanged := func(map[string]any) {}
	tests := []struct {
		name        string
		header      string
		wantStatus  int
		wantMessage string
	}{
		{"valid", "Bearer " + mint(claims(unchanged), SignCurrent), 200, ""},
		{"missing", "", 401, "Access token is empty."},
		{"basic scheme", "Basic abc", 401, "Access token is empty."},
		{"malformed", "Bearer not.a.jwt", 401, "CompactToken parsing failed"},
		{"expired", "Bearer " + mint(claims(func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		}), SignCurrent), 401, "Lifetime validation failed, the token is expired."},
		{"not yet valid", "Bearer " + mint(claims(func(c map[string]any) {
			c["nbf"] = time.Now().Add(time.Hour).Unix()
		}), SignCurrent), 401, "Lifetime validation failed, the token is not yet valid."},
		{"unknown kid", "Bearer " + mint(claims(unchanged), SignUnknownKID), 401,
			"Access token validation failure."},
		{"unregistered key", "Bearer " + mint(claims(unchanged), SignUnregisteredKey), 401,
			"Access token validation failure."},
		{"alg none", "Bearer " + mint(claims(unchanged), SignNone), 401,
			"Access token validation failure."},
		{"hs256 with public key", "Bearer " + mint(claims(unchanged), SignHS256PublicKey), 401,
			"Access token validation failure."},
		{"gateway audience", "Bearer " + token(t, sim, PortalClientID, PortalClientSecret,
			GatewayAppIDURI+"/.default"), 401, "Invalid audience."},
		{"graph app id audience", "Bearer " + mint(claims(func(c map[string]any) {
			c["aud"] = GraphAppID
		}), SignCurrent), 200, ""},
		{"other tenant", "Bearer " + mint(claims(func(c map[string]any) {
			c["tid"] = "11111111-2222-3333-4444-555555555555"
			c["iss"] = "https://sts.windows.net/11111111-2222-3333-4444-555555555555/"
		}), SignCurrent), 401, "Invalid issuer."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := graphRequest(t, sim, http.MethodGet,
				serverPath(DefaultSiteID, ExampleServerID), "", nil,
				map[string]string{"Authorization": tt.header})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			e := graphErrorOf(t, body)
			if e.Code != "InvalidAuthenticationToken" || !strings.Contains(e.Message, tt.wantMessage) {
				t.Errorf("error: got %s %q, want InvalidAuthenticationToken %q",
					e.Code, e.Message, tt.wantMessage)
			}
			challenge := resp.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(challenge, "Bearer ") ||
				!strings.Contains(challenge, `client_id="`+GraphAppID+`"`) {
				t.Errorf("WWW-Authenticate: got %q, want Graph's Bearer challenge", challenge)
			}
		})
	}
}

func TestGraphAuthorization(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	readOnly := graphToken(t, sim, ReadOnlyClientID, ReadOnlyClientSecret)
	noRole := graphToken(t, sim, NoRoleClientID, NoRoleClientSecret)
	readWrite := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	patch := []byte(`{"displayName":"x"}`)
	tests := []struct {
		name       string
		method     string
		token      string
		wantStatus int
	}{
		{"read-only app reads", http.MethodGet, readOnly, 200},
		{"read-only app writes", http.MethodPatch, readOnly, 403},
		{"no-role app reads", http.MethodGet, noRole, 403},
		{"no-role app writes", http.MethodPatch, noRole, 403},
		{"read-write app writes", http.MethodPatch, readWrite, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body []byte
			if tt.method == http.MethodPatch {
				body = patch
			}
			resp, got := graphRequest(t, sim, tt.method, serverPath(DefaultSiteID, ExampleServerID),
				tt.token, body, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", resp.StatusCode, tt.wantStatus, got)
			}
			if tt.wantStatus == http.StatusForbidden {
				e := graphErrorOf(t, got)
				if e.Code != "Forbidden" || !strings.Contains(e.Message, RoleReadWriteAll) {
					t.Errorf("error: got %s %q, want Forbidden naming %s", e.Code, e.Message,
						RoleReadWriteAll)
				}
			}
		})
	}
}

func TestPatchValidation(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	tests := []struct {
		name        string
		body        string
		contentType string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"graph page example", `{"@odata.type":"#microsoft.graph.microsoftTunnelServer",` +
			`"displayName":"Display Name value","tunnelServerHealthStatus":"healthy",` +
			`"lastCheckinDateTime":"2017-01-01T00:02:46.0431416-08:00",` +
			`"agentImageDigest":"a","serverImageDigest":"b"}`, "", 200, "", ""},
		{"utc z", `{"lastCheckinDateTime":"2017-01-01T00:02:46Z"}`, "", 200, "", ""},
		{"empty object", `{}`, "", 200, "", ""},
		{"null digest", `{"agentImageDigest":null}`, "", 200, "", ""},
		{"matching id", `{"id":"` + strings.ToUpper(ExampleServerID) + `"}`, "", 200, "", ""},
		{"charset parameter", `{"displayName":"x"}`, "application/json; charset=utf-8", 200, "", ""},
		{"zoneless date", `{"lastCheckinDateTime":"2024-01-19T13:38:22.169688"}`, "", 400,
			"invalidRequest", "[item] Cannot convert the literal '2024-01-19T13:38:22.169688' to " +
				"the expected type 'Edm.DateTimeOffset'."},
		{"locale date", `{"lastCheckinDateTime":"14.04.2021 14:11:27 +02:00"}`, "", 400,
			"invalidRequest", "Edm.DateTimeOffset"},
		{"impossible date", `{"lastCheckinDateTime":"2021-02-30T10:00:00Z"}`, "", 400,
			"invalidRequest", "Edm.DateTimeOffset"},
		{"eight fraction digits", `{"lastCheckinDateTime":"2021-02-03T10:00:00.123456789Z"}`, "",
			400, "invalidRequest", "Edm.DateTimeOffset"},
		{"null displayName", `{"displayName":null}`, "", 400, "ModelValidationFailure",
			"A null value was found for the property named 'displayName', which has the " +
				"expected type 'Edm.String[Nullable=False]'. The expected type " +
				"'Edm.String[Nullable=False]' does not allow null values."},
		{"null status", `{"tunnelServerHealthStatus":null}`, "", 400, "ModelValidationFailure",
			"microsoftTunnelServerHealthStatus[Nullable=False]"},
		{"number displayName", `{"displayName":42}`, "", 400, "BadRequest",
			"Cannot convert a primitive value to the expected type 'Edm.String'."},
		{"object displayName", `{"displayName":{"a":1}}`, "", 400, "BadRequest",
			"An unexpected 'StartObject' node was found for property named 'displayName'"},
		{"array digest", `{"agentImageDigest":["a"]}`, "", 400, "BadRequest", "'StartArray'"},
		{"unknown property", `{"displayName":"x","colour":"blue"}`, "", 400, "BadRequest",
			"The property 'colour' does not exist on type 'microsoft.graph.microsoftTunnelServer'."},
		{"wrong enum case", `{"tunnelServerHealthStatus":"Healthy"}`, "", 400, "BadRequest",
			"Requested value 'Healthy' was not found."},
		{"unknownFutureValue", `{"tunnelServerHealthStatus":"unknownFutureValue"}`, "", 400,
			"BadRequest", "'unknownFutureValue'"},
		{"wrong odata type", `{"@odata.type":"#microsoft.graph.microsoftTunnelSite"}`, "", 400,
			"BadRequest", "not assignable to the expected type"},
		{"unresolvable odata type", `{"@odata.type":"#foo.bar"}`, "", 400, "BadRequest",
			"could not be resolved by the model"},
		{"odata context", `{"@odata.context":"x","displayName":"y"}`, "", 400, "BadRequest",
			"'odata.context'"},
		{"id mismatch", `{"id":"00000000-0000-0000-0000-000000000001"}`, "", 400, "BadRequest",
			"does not match"},
		{"duplicate property", `{"displayName":"a","displayName":"b"}`, "", 400, "BadRequest",
			"Multiple properties with the name 'displayName'"},
		{"malformed", `{"displayName":"x"`, "", 400, "BadRequest", "Unable to read JSON"},
		{"array body", `[{"displayName":"x"}]`, "", 400, "BadRequest", "Unable to read JSON"},
		{"trailing data", `{"displayName":"x"} {}`, "", 400, "BadRequest", "Unable to read JSON"},
		{"empty body", ``, "", 400, "BadRequest", "Unable to read JSON"},
		{"form content type", `displayName=x`, "application/x-www-form-urlencoded", 400,
			"BadRequest", "Content-Type header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			headers := map[string]string{}
			if tt.contentType != "" {
				headers["Content-Type"] = tt.contentType
			}
			resp, body := graphRequest(t, sim, http.MethodPatch,
				serverPath(DefaultSiteID, ExampleServerID), tok, []byte(tt.body), headers)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus != http.StatusBadRequest {
				return
			}
			e := graphErrorOf(t, body)
			if e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMessage) {
				t.Errorf("error: got %s %q, want %s containing %q", e.Code, e.Message,
					tt.wantCode, tt.wantMessage)
			}
			if e.InnerError.RequestID != resp.Header.Get("request-id") || e.InnerError.Date == "" {
				t.Errorf("innerError: got %+v, want request-id %s and a date", e.InnerError,
					resp.Header.Get("request-id"))
			}
		})
	}
}

func TestPatchNotFound(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	tests := []struct {
		name, site, server, wantMention string
	}{
		{"unknown server", DefaultSiteID, "00000000-0000-0000-0000-000000000009", "microsoftTunnelServer "},
		{"unknown site", "00000000-0000-0000-0000-000000000008", ExampleServerID, "microsoftTunnelSite "},
		{"server of another site", SecondSiteID, ExampleServerID, "microsoftTunnelServer "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := graphRequest(t, sim, http.MethodPatch, serverPath(tt.site, tt.server),
				tok, []byte(`{"displayName":"x"}`), nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("status: got %d, want 404: %s", resp.StatusCode, body)
			}
			e := graphErrorOf(t, body)
			if e.Code != "ResourceNotFound" || !strings.Contains(e.Message, tt.wantMention) {
				t.Errorf("error: got %s %q, want ResourceNotFound naming %q", e.Code, e.Message,
					tt.wantMention)
			}
		})
	}
}

func TestGzipBodies(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{MaxBodyBytes: 1024})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	gz := func(s string) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
		return buf.Bytes()
	}
	// A body that compresses far below the bound but inflates above it.
	bomb := `{"agentImageDigest":"` + strings.Repeat("a", 4096) + `"}`
	tests := []struct {
		name       string
		body       []byte
		encoding   string
		wantStatus int
	}{
		{"gzip body", gz(`{"displayName":"from gzip"}`), "gzip", 200},
		{"gzip inflates past bound", gz(bomb), "gzip", 413},
		{"plain body past bound", []byte(bomb), "", 413},
		{"corrupt gzip", []byte("not gzip at all"), "gzip", 400},
		{"brotli", []byte("x"), "br", 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			headers := map[string]string{}
			if tt.encoding != "" {
				headers["Content-Encoding"] = tt.encoding
			}
			resp, body := graphRequest(t, sim, http.MethodPatch,
				serverPath(DefaultSiteID, ExampleServerID), tok, tt.body, headers)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == http.StatusOK {
				if got := decodeObject(t, body)["displayName"]; got != "from gzip" {
					t.Errorf("displayName after gzip PATCH: got %v, want %q", got, "from gzip")
				}
			}
		})
	}
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	tests := []struct {
		name   string
		bearer string
	}{
		{"success", graphToken(t, sim, DefaultClientID, DefaultClientSecret)},
		{"error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := graphRequest(t, sim, http.MethodGet,
				serverPath(DefaultSiteID, ExampleServerID), tt.bearer, nil,
				map[string]string{"client-request-id": "c0ffee00-0000-4000-8000-000000000001"})
			if resp.Header.Get("request-id") == "" {
				t.Error("request-id header missing")
			}
			if got, want := resp.Header.Get("client-request-id"),
				"c0ffee00-0000-4000-8000-000000000001"; got != want {
				t.Errorf("client-request-id: got %q, want %q", got, want)
			}
			if resp.StatusCode != http.StatusOK {
				e := graphErrorOf(t, body)
				if e.InnerError.ClientRequestID != "c0ffee00-0000-4000-8000-000000000001" {
					t.Errorf("innerError client-request-id: got %q", e.InnerError.ClientRequestID)
				}
			}
		})
	}
}

func TestIntuneErrorForm(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{IntuneErrors: true})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	resp, body := graphRequest(t, sim, http.MethodGet,
		serverPath(DefaultSiteID, "00000000-0000-0000-0000-000000000009"), tok, nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status: got %d, want 404", resp.StatusCode)
	}
	e := graphErrorOf(t, body)
	if !strings.Contains(e.Message, "\r\n") {
		t.Errorf("message: got %q, want CRLF-indented JSON", e.Message)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(e.Message), &doc); err != nil {
		t.Fatalf("message is not a JSON document: %v: %q", err, e.Message)
	}
	msg, _ := doc["Message"].(string)
	if doc["_version"] != float64(3) || !strings.Contains(msg, "Activity ID: "+
		resp.Header.Get("request-id")) || !strings.Contains(msg, "was not found") {
		t.Errorf("document: got %v, want _version 3 and a Message naming the activity id", doc)
	}
	if _, ok := doc["RetryAfter"]; !ok {
		t.Errorf("document lacks RetryAfter: %v", doc)
	}

	// Validation errors come from the OData layer and keep the plain form.
	resp, body = graphRequest(t, sim, http.MethodPatch, serverPath(DefaultSiteID, ExampleServerID),
		tok, []byte(`{"displayName":null}`), nil)
	if e := graphErrorOf(t, body); resp.StatusCode != 400 || strings.HasPrefix(e.Message, "{") {
		t.Errorf("validation error: got %d %q, want 400 with a plain message", resp.StatusCode, e.Message)
	}
}

func TestPatchNoContent(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{PatchNoContent: true})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	resp, body := graphRequest(t, sim, http.MethodPatch, serverPath(DefaultSiteID, ExampleServerID),
		tok, []byte(`{"tunnelServerHealthStatus":"offline"}`), nil)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("got %d with %d body bytes, want 204 and no body", resp.StatusCode, len(body))
	}
	if got, _ := sim.Server(DefaultSiteID, ExampleServerID); got["tunnelServerHealthStatus"] != "offline" {
		t.Errorf("stored status: got %v, want offline", got["tunnelServerHealthStatus"])
	}
}

func TestGetShapes(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	tok := graphToken(t, sim, ReadOnlyClientID, ReadOnlyClientSecret)
	tests := []struct {
		name        string
		path        string
		wantStatus  int
		wantContext string
		wantValues  int // -1: an entity, not a list
	}{
		{"server", serverPath(DefaultSiteID, ExampleServerID), 200,
			"/$metadata#deviceManagement/microsoftTunnelSites('" + DefaultSiteID +
				"')/microsoftTunnelServers/$entity", -1},
		{"servers", "/deviceManagement/microsoftTunnelSites/" + DefaultSiteID +
			"/microsoftTunnelServers", 200, "/microsoftTunnelServers", 3},
		{"site", "/deviceManagement/microsoftTunnelSites/" + SecondSiteID, 200,
			"/$metadata#deviceManagement/microsoftTunnelSites/$entity", -1},
		{"sites", "/deviceManagement/microsoftTunnelSites", 200,
			"/$metadata#deviceManagement/microsoftTunnelSites", 2},
		{"unknown site servers", "/deviceManagement/microsoftTunnelSites/x/microsoftTunnelServers",
			404, "", 0},
		{"unknown segment", "/deviceManagement/microsoftTunnelGateways", 400, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := graphRequest(t, sim, http.MethodGet, tt.path, tok, nil, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus != http.StatusOK {
				graphErrorOf(t, body)
				return
			}
			obj := decodeObject(t, body)
			ctx, _ := obj["@odata.context"].(string)
			if !strings.HasPrefix(ctx, sim.GraphBaseURL()) || !strings.HasSuffix(ctx, tt.wantContext) {
				t.Errorf("@odata.context: got %q, want suffix %q", ctx, tt.wantContext)
			}
			if tt.wantValues < 0 {
				if obj["@odata.type"] == nil || obj["id"] == nil {
					t.Errorf("entity lacks @odata.type or id: %s", body)
				}
				return
			}
			if values, _ := obj["value"].([]any); len(values) != tt.wantValues {
				t.Errorf("value: got %d items, want %d", len(values), tt.wantValues)
			}
		})
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{PageSize: 2})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	tests := []struct {
		name      string
		query     string
		wantPages []int
	}{
		{"page size option", "", []int{2, 1}},
		{"top one", "?$top=1", []int{1, 1, 1}},
		{"top above page size", "?$top=50", []int{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := sim.GraphBaseURL() + "/deviceManagement/microsoftTunnelSites/" + DefaultSiteID +
				"/microsoftTunnelServers" + tt.query
			var pages []int
			seen := map[string]bool{}
			for next != "" && len(pages) < 10 {
				req, _ := http.NewRequest(http.MethodGet, next, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, body := do(t, sim, req)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: got %d: %s", next, resp.StatusCode, body)
				}
				var page struct {
					Value    []map[string]any `json:"value"`
					NextLink string           `json:"@odata.nextLink"`
				}
				_ = json.Unmarshal(body, &page)
				for _, s := range page.Value {
					if id := s["id"].(string); seen[id] {
						t.Errorf("server %s listed twice", id)
					} else {
						seen[id] = true
					}
				}
				pages = append(pages, len(page.Value))
				if page.NextLink != "" && !strings.HasPrefix(page.NextLink, sim.URL()+"/beta/") {
					t.Fatalf("nextLink: got %q, want an absolute simulator URL", page.NextLink)
				}
				next = page.NextLink
			}
			if got, want := pages, tt.wantPages; !equalInts(got, want) {
				t.Errorf("page sizes: got %v, want %v", got, want)
			}
		})
	}
	resp, _ := graphRequest(t, sim, http.MethodGet, "/deviceManagement/microsoftTunnelSites?$top=-1",
		tok, nil, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("$top=-1: got %d, want 400", resp.StatusCode)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	resp, body := graphRequest(t, sim, http.MethodDelete, serverPath(DefaultSiteID, ExampleServerID),
		tok, nil, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("status: got %d, want 405: %s", resp.StatusCode, body)
	}
	graphErrorOf(t, body)
}
