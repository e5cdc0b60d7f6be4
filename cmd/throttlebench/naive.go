package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"tunnelgateway/internal/graphsim"
)

// startForwarder serves the naive forwarder: every PATCH goes straight to Graph through an
// azcore pipeline with the SDKs' default retry behaviour (3 retries, Retry-After honoured,
// exponential backoff otherwise) and no pacing, and Graph's answer goes back as it came.
func startForwarder(sim *graphsim.Simulator) (*running, error) {
	cred, err := azidentity.NewClientSecretCredential(sim.TenantID(), graphsim.DefaultClientID,
		graphsim.DefaultClientSecret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: sim.AuthorityHost()},
				Transport: sim.Client(),
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		return nil, fmt.Errorf("naive forwarder credential: %w", err)
	}
	pipeline := runtime.NewPipeline("throttlebench", "1", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred,
			[]string{graphsim.GraphResource + "/.default"}, nil)},
	}, &policy.ClientOptions{
		Retry:     policy.RetryOptions{MaxRetries: 3},
		Transport: sim.Client(),
	})
	return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forward(w, r, pipeline, sim.URL())
	}))
}

func forward(w http.ResponseWriter, r *http.Request, pipeline runtime.Pipeline, graph string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	req, err := runtime.NewRequest(r.Context(), r.Method, graph+r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body)),
		"application/json"); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := pipeline.Do(req)
	if err != nil {
		http.Error(w, "forward: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, name := range []string{"Content-Type", "Retry-After"} {
		if v := resp.Header.Get(name); v != "" {
			w.Header().Set(name, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// graphPath is the Graph path of one server, as the naive forwarder receives it.
func graphPath(server string) string {
	return strings.Join([]string{"/beta/deviceManagement/microsoftTunnelSites",
		graphsim.DefaultSiteID, "microsoftTunnelServers", server}, "/")
}

// v1Path is the gateway's own route for one server.
func v1Path(server string) string {
	return "/v1/tunnel-sites/" + graphsim.DefaultSiteID + "/servers/" + server
}
