package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	tunnelgateway "tunnelgateway"
	"tunnelgateway/internal/graphsim"
	"tunnelgateway/internal/metrics"
	"tunnelgateway/internal/policy"
)

// specDoc is openapi.yaml decoded as JSON values, for the agreement test.
type specDoc struct {
	raw      map[string]any
	compiler *jsonschema.Compiler
}

const specURL = "https://tunnelgateway.invalid/openapi.yaml"

func loadSpec(t *testing.T) *specDoc {
	t.Helper()
	js, err := yaml.YAMLToJSON(tunnelgateway.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(specURL, doc); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatal(err)
	}
	return &specDoc{raw: raw, compiler: c}
}

// operation returns the responses object of a path template and method.
func (d *specDoc) responses(t *testing.T, path, method string) map[string]any {
	t.Helper()
	item, ok := d.raw["paths"].(map[string]any)[path].(map[string]any)
	if !ok {
		t.Fatalf("openapi.yaml has no path %s", path)
	}
	op, ok := item[strings.ToLower(method)].(map[string]any)
	if !ok {
		t.Fatalf("openapi.yaml has no %s %s", method, path)
	}
	return op["responses"].(map[string]any)
}

// check asserts that an answer is one the spec documents: its status is listed for the
// operation, and a JSON body validates against the schema of its content type.
func (d *specDoc) check(t *testing.T, path, method string, got response) {
	t.Helper()
	resp, ok := d.responses(t, path, method)[fmt.Sprint(got.status)].(map[string]any)
	if !ok {
		t.Errorf("%s %s answered %d, which openapi.yaml does not document; body %s",
			method, path, got.status, got.body)
		return
	}
	pointer := ""
	if ref, ok := resp["$ref"].(string); ok {
		pointer = strings.TrimPrefix(ref, "#")
		resp = d.at(t, pointer)
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if got.body != "" {
			t.Errorf("%s %s %d: body %q where the spec documents none", method, path, got.status, got.body)
		}
		return
	}
	ct, _, _ := mime.ParseMediaType(got.header.Get("Content-Type"))
	media, ok := content[ct].(map[string]any)
	if !ok {
		t.Errorf("%s %s %d: content type %q not documented (have %v)", method, path, got.status,
			ct, keys(content))
		return
	}
	schemaRef, _ := media["schema"].(map[string]any)["$ref"].(string)
	if schemaRef == "" {
		return
	}
	schema, err := d.compiler.Compile(specURL + schemaRef)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaRef, err)
	}
	body, err := jsonschema.UnmarshalJSON(strings.NewReader(got.body))
	if err != nil {
		t.Errorf("%s %s %d: body is not JSON: %v", method, path, got.status, err)
		return
	}
	if err := schema.Validate(body); err != nil {
		t.Errorf("%s %s %d: body does not match %s: %v\nbody: %s", method, path, got.status,
			schemaRef, err, got.body)
	}
}

func (d *specDoc) at(t *testing.T, pointer string) map[string]any {
	t.Helper()
	var cur any = d.raw
	for _, part := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		cur = cur.(map[string]any)[part]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("openapi.yaml has nothing at %s", pointer)
	}
	return m
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSpecAgreement sends, for every operation in openapi.yaml, a successful request and the
// failures a caller commonly meets, and checks each answer against the spec: the status is
// documented and the body matches the documented schema.
func TestSpecAgreement(t *testing.T) {
	t.Parallel()
	spec := loadSpec(t)
	s := startStack(t, stackOptions{sim: graphsim.Options{PageSize: 2}})
	unknown := "0f0f0f0f-0000-4000-8000-000000000000"

	// Every documented path is served, and the router serves nothing undocumented.
	fill := strings.NewReplacer("{siteId}", site, "{serverId}", server)
	for path, item := range spec.raw["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			m := strings.ToUpper(method)
			r := request{method: m, path: fill.Replace(path)}
			if m == http.MethodPatch {
				r.body = `{"displayName":"contract"}`
			}
			got := s.do(t, r)
			if got.status != http.StatusOK {
				t.Errorf("%s %s: status %d, want 200; body %s", m, path, got.status, got.body)
			}
			if path != "/openapi.yaml" {
				spec.check(t, path, m, got)
			}
		}
	}
	if got := s.do(t, request{method: http.MethodGet, path: "/v1/undocumented"}); got.status != 404 {
		t.Errorf("an undocumented path answered %d, want 404", got.status)
	}

	for _, fam := range []struct {
		name, server, servers string
		serverPath, list      string
	}{
		{"v1", v1Server(site, server), "/v1/tunnel-sites/" + site + "/servers",
			"/v1/tunnel-sites/{siteId}/servers/{serverId}", "/v1/tunnel-sites/{siteId}/servers"},
		{"graph", graphServer(site, server), "/beta/deviceManagement/microsoftTunnelSites/" + site +
			"/microsoftTunnelServers",
			"/beta/deviceManagement/microsoftTunnelSites/{siteId}/microsoftTunnelServers/{serverId}",
			"/beta/deviceManagement/microsoftTunnelSites/{siteId}/microsoftTunnelServers"},
	} {
		unknownPath := strings.Replace(fam.server, server, unknown, 1)
		for _, tc := range []struct {
			name string
			r    request
			path string
		}{
			{"invalid body", request{method: http.MethodPatch, path: fam.server,
				body: `{"displayName":"","colour":1}`}, fam.serverPath},
			{"malformed body", request{method: http.MethodPatch, path: fam.server, body: `{"a":`},
				fam.serverPath},
			{"too large", request{method: http.MethodPatch, path: fam.server,
				body: `{"displayName":"` + strings.Repeat("a", 70_000) + `"}`}, fam.serverPath},
			{"wrong media type", request{method: http.MethodPatch, path: fam.server, body: "x=1",
				headers: map[string]string{"Content-Type": "text/plain"}}, fam.serverPath},
			{"no credentials", request{method: http.MethodPatch, path: fam.server, noKey: true,
				body: `{"displayName":"x"}`}, fam.serverPath},
			{"wrong api key", request{method: http.MethodGet, path: fam.server,
				headers: map[string]string{"X-Api-Key": "nope"}}, fam.serverPath},
			{"unknown server", request{method: http.MethodPatch, path: unknownPath,
				body: `{"displayName":"x"}`}, fam.serverPath},
			{"unknown server read", request{method: http.MethodGet, path: unknownPath}, fam.serverPath},
			{"bad id in a list", request{method: http.MethodGet,
				path: strings.Replace(fam.servers, site, "nope", 1)}, fam.list},
		} {
			t.Run(fam.name+"/"+tc.name, func(t *testing.T) {
				got := s.do(t, tc.r)
				if got.status < 400 {
					t.Fatalf("status %d, want an error; body %s", got.status, got.body)
				}
				spec.check(t, tc.path, tc.r.method, got)
			})
		}
	}
}

// TestUpdatablePropertiesAgree keeps the policy's list of grantable properties equal to the
// update schema's properties, less the two that change nothing (id and @odata.type).
func TestUpdatablePropertiesAgree(t *testing.T) {
	t.Parallel()
	spec := loadSpec(t)
	props := spec.at(t, "/components/schemas/MicrosoftTunnelServerUpdate")["properties"].(map[string]any)
	var fromSpec []string
	for name := range props {
		if name != "id" && name != "@odata.type" {
			fromSpec = append(fromSpec, name)
		}
	}
	sort.Strings(fromSpec)
	fromPolicy := append([]string(nil), policy.UpdatableProperties...)
	sort.Strings(fromPolicy)
	if strings.Join(fromSpec, ",") != strings.Join(fromPolicy, ",") {
		t.Errorf("policy.UpdatableProperties = %v, openapi.yaml updates %v", fromPolicy, fromSpec)
	}
	for _, name := range fromSpec {
		if got := metrics.FieldLabel("/" + name); got != "/"+name {
			t.Errorf("metrics.FieldLabel(/%s) = %q: the metrics' known fields miss it", name, got)
		}
	}
}
