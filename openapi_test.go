package tunnelgateway_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"tunnelgateway"
	"tunnelgateway/internal/validation"
)

// spec is openapi.yaml as generic values, read the way any YAML tool would.
func spec(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(tunnelgateway.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse as YAML: %v", err)
	}
	return doc
}

// at follows a path of names through the document, failing the test where one is missing.
func at(t *testing.T, node any, names ...string) any {
	t.Helper()
	for i, name := range names {
		m, ok := node.(map[string]any)
		if !ok || m[name] == nil {
			t.Fatalf("openapi.yaml has nothing at %s", strings.Join(names[:i+1], " > "))
		}
		node = m[name]
	}
	return node
}

func TestOpenAPIVersion(t *testing.T) {
	t.Parallel()
	if got, want := at(t, spec(t), "openapi"), "3.1.0"; got != want {
		t.Errorf("openapi = %v, want %v", got, want)
	}
}

func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	const (
		v1Server    = "/v1/tunnel-sites/{siteId}/servers/{serverId}"
		graphSites  = "/beta/deviceManagement/microsoftTunnelSites"
		graphServer = graphSites + "/{siteId}/microsoftTunnelServers/{serverId}"
	)
	tests := []struct {
		name, path, method string
		statuses           []string
	}{
		{"v1 patch", v1Server, "patch", []string{"200", "204", "400", "401", "403", "404",
			"409", "413", "415", "429", "502", "503", "504"}},
		{"graph patch", graphServer, "patch", []string{"200", "204", "400", "401", "403",
			"404", "409", "413", "415", "429", "502", "503", "504"}},
		{"v1 sites", "/v1/tunnel-sites", "get", []string{"200", "401", "429", "502", "504"}},
		{"v1 servers", "/v1/tunnel-sites/{siteId}/servers", "get", []string{"200", "404"}},
		{"v1 server", v1Server, "get", []string{"200", "400", "404", "502", "504"}},
		{"graph sites", graphSites, "get", []string{"200", "401", "429", "502", "504"}},
		{"graph servers", graphSites + "/{siteId}/microsoftTunnelServers", "get",
			[]string{"200", "404"}},
		{"graph server", graphServer, "get", []string{"200", "400", "404", "502", "504"}},
		{"spec", "/openapi.yaml", "get", []string{"200"}},
	}
	doc := spec(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			responses := at(t, doc, "paths", tt.path, tt.method, "responses")
			for _, status := range tt.statuses {
				at(t, responses, status)
			}
		})
	}
}

// TestOpenAPIErrorShapes checks that each family answers errors in its own shape: problem
// documents on /v1, Graph's error object on the Graph-compatible paths.
func TestOpenAPIErrorShapes(t *testing.T) {
	t.Parallel()
	doc := spec(t)
	paths := at(t, doc, "paths").(map[string]any)
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			for status, response := range at(t, op, "responses").(map[string]any) {
				if status < "400" {
					continue
				}
				ref, _ := response.(map[string]any)["$ref"].(string)
				name := strings.TrimPrefix(ref, "#/components/responses/")
				content := at(t, doc, "components", "responses", name, "content")
				_, problem := content.(map[string]any)["application/problem+json"]
				// /beta answers in Graph's shape; every other path, /openapi.yaml too, in RFC 9457's.
				if got, want := problem, !strings.HasPrefix(path, "/beta/"); got != want {
					t.Errorf("%s %s %s: problem+json = %v, want %v", method, path, status,
						got, want)
				}
			}
		}
	}
}

func TestOpenAPIPathIDPattern(t *testing.T) {
	t.Parallel()
	doc := spec(t)
	got := at(t, doc, "components", "schemas", "Guid", "pattern")
	if got != validation.IDPattern {
		t.Errorf("Guid pattern = %v, want validation.IDPattern %v", got, validation.IDPattern)
	}
	for _, name := range []string{"siteId", "serverId"} {
		ref := at(t, doc, "components", "parameters", name, "schema", "$ref")
		if got, want := ref, "#/components/schemas/Guid"; got != want {
			t.Errorf("parameter %s schema = %v, want %v", name, got, want)
		}
	}
}

func TestOpenAPISecuritySchemes(t *testing.T) {
	t.Parallel()
	doc := spec(t)
	schemes := at(t, doc, "components", "securitySchemes")
	if got := at(t, schemes, "entraBearer", "scheme"); got != "bearer" {
		t.Errorf("entraBearer scheme = %v, want bearer", got)
	}
	if got := at(t, schemes, "apiKey", "name"); got != "X-Api-Key" {
		t.Errorf("apiKey header = %v, want X-Api-Key", got)
	}
}

// TestValidatorUsesSpecSchema checks the validator against the schema as openapi.yaml
// publishes it: every property the spec lists is accepted with its example-like value, every
// enum value the spec lists is accepted, and a refused enum value reports the spec's list.
func TestValidatorUsesSpecSchema(t *testing.T) {
	t.Parallel()
	v, err := validation.New()
	if err != nil {
		t.Fatalf("validation.New: %v", err)
	}
	const server = "b5cf0aee-0aee-b5cf-ee0a-cfb5ee0acfb5"
	names := strings.Split(strings.TrimPrefix(validation.UpdateSchemaPointer, "/"), "/")
	update := at(t, spec(t), names...)
	if got := at(t, update, "additionalProperties"); got != false {
		t.Errorf("additionalProperties = %v, want false", got)
	}

	values := map[string]string{
		"@odata.type":              validation.ODataType,
		"id":                       server,
		"lastCheckinDateTime":      "2017-01-01T00:02:46.0431416-08:00",
		"tunnelServerHealthStatus": "healthy",
	}
	for name := range at(t, update, "properties").(map[string]any) {
		value, ok := values[name]
		if !ok {
			value = "some value"
		}
		body, _ := json.Marshal(map[string]string{"displayName": "x", name: value})
		if _, err := v.Update(body, server); err != nil {
			t.Errorf("property %s from the spec refused: %v", name, err)
		}
	}

	enum := at(t, update, "properties", "tunnelServerHealthStatus", "enum").([]any)
	var want []string
	for _, e := range enum {
		want = append(want, e.(string))
		body, _ := json.Marshal(map[string]any{"tunnelServerHealthStatus": e})
		if _, err := v.Update(body, server); err != nil {
			t.Errorf("enum value %v refused: %v", e, err)
		}
	}
	_, err = v.Update([]byte(`{"tunnelServerHealthStatus":"unknownFutureValue"}`), server)
	var verr *validation.Error
	if !errors.As(err, &verr) || len(verr.Fields) != 1 {
		t.Fatalf("unknownFutureValue: got %v, want one field error", err)
	}
	if got := verr.Fields[0].Allowed; !slices.Equal(got, want) {
		t.Errorf("allowed = %v, want the spec's enum %v", got, want)
	}
}

// TestOpenAPIReferences resolves every local $ref, so a renamed component cannot leave a
// dangling reference behind.
func TestOpenAPIReferences(t *testing.T) {
	t.Parallel()
	doc := spec(t)
	var refs []string
	var collect func(node any)
	collect = func(node any) {
		switch n := node.(type) {
		case map[string]any:
			if ref, ok := n["$ref"].(string); ok {
				refs = append(refs, ref)
			}
			for _, child := range n {
				collect(child)
			}
		case []any:
			for _, child := range n {
				collect(child)
			}
		}
	}
	collect(doc)
	if len(refs) < 50 {
		t.Fatalf("found %d references, want the spec's many", len(refs))
	}
	for _, ref := range refs {
		pointer, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			t.Errorf("reference %q is not local to openapi.yaml", ref)
			continue
		}
		at(t, doc, strings.Split(pointer, "/")...)
	}
}

// TestOpenAPIPathParameters checks that each {name} in a path is declared as a required path
// parameter, and that operation ids are unique.
func TestOpenAPIPathParameters(t *testing.T) {
	t.Parallel()
	doc := spec(t)
	ids := map[string]bool{}
	for path, item := range at(t, doc, "paths").(map[string]any) {
		declared := map[string]bool{}
		params, _ := item.(map[string]any)["parameters"].([]any)
		for _, p := range params {
			ref := p.(map[string]any)["$ref"].(string)
			name := strings.TrimPrefix(ref, "#/components/parameters/")
			param := at(t, doc, "components", "parameters", name).(map[string]any)
			if param["in"] == "path" && param["required"] == true {
				declared[param["name"].(string)] = true
			}
		}
		for _, segment := range strings.Split(path, "/") {
			name, isParam := strings.CutPrefix(segment, "{")
			if isParam && !declared[strings.TrimSuffix(name, "}")] {
				t.Errorf("%s: %s is not declared as a required path parameter", path, segment)
			}
		}
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			id, _ := op.(map[string]any)["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s %s: operationId %q is missing or repeated", method, path, id)
			}
			ids[id] = true
		}
	}
}
