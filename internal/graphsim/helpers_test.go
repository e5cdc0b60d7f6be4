package graphsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// startSim starts a simulator for one test and closes it afterwards.
func startSim(t *testing.T, opts Options) *Simulator {
	t.Helper()
	sim, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sim
}

// clientOptions points azidentity at the simulator.
func clientOptions(sim *Simulator) azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: sim.AuthorityHost()},
		Transport: sim.Client(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

// token gets an access token for clientID from the token endpoint with a plain HTTP call.
func token(t *testing.T, sim *Simulator, clientID, secret, scope string) string {
	t.Helper()
	resp, body := postForm(t, sim, sim.TenantID(), map[string]string{
		"grant_type": "client_credentials", "client_id": clientID, "client_secret": secret,
		"scope": scope,
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token status: got %d, want 200: %s", resp.StatusCode, body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("decode token response: %v", err)
	}
	return tr.AccessToken
}

func graphToken(t *testing.T, sim *Simulator, clientID, secret string) string {
	t.Helper()
	return token(t, sim, clientID, secret, GraphResource+"/.default")
}

func postForm(t *testing.T, sim *Simulator, tenant string, form map[string]string) (*http.Response, []byte) {
	t.Helper()
	values := make([]string, 0, len(form))
	for k, v := range form {
		values = append(values, urlEncode(k)+"="+urlEncode(v))
	}
	req, err := http.NewRequest(http.MethodPost, sim.URL()+"/"+tenant+"/oauth2/v2.0/token",
		bytes.NewBufferString(join(values, "&")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, sim, req)
}

// graphRequest sends a Graph request with an optional bearer token and JSON body.
func graphRequest(t *testing.T, sim *Simulator, method, path, bearer string, body []byte,
	headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, sim.GraphBaseURL()+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return do(t, sim, req)
}

func do(t *testing.T, sim *Simulator, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := sim.Client().Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// serverPath is the Graph path of a server.
func serverPath(siteID, serverID string) string {
	return "/deviceManagement/microsoftTunnelSites/" + siteID + "/microsoftTunnelServers/" + serverID
}

func decodeObject(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// graphErrorOf decodes a Graph error body.
func graphErrorOf(t *testing.T, body []byte) graphErrorDetail {
	t.Helper()
	var b graphErrorBody
	if err := json.Unmarshal(body, &b); err != nil || b.Error.Code == "" {
		t.Fatalf("not a Graph error body: %s (%v)", body, err)
	}
	return b.Error
}
