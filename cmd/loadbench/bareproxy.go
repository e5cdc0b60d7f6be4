//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The bare proxy runs as `loadbench bare-proxy ...`, a child process of the harness.
const (
	bareProxyCommand = "bare-proxy"
	bareReadyPath    = "/_loadbench/ready"
	bareMallocsPath  = "/_loadbench/mallocs"
)

// serveBareProxy is the baseline: net/http/httputil.ReverseProxy with nothing of the gateway's
// work but attaching the Graph token (read once from in) so the upstream does the same work as
// for the gateway. It trusts the simulator through SSL_CERT_FILE, as the gateway does, and
// serves until ctx ends.
func serveBareProxy(ctx context.Context, args []string, in io.Reader) error {
	fs := flag.NewFlagSet(bareProxyCommand, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen host:port")
	upstream := fs.String("upstream", "", "the simulator's URL, https://host:port")
	idle := fs.Int("idle-conns", 256, "idle upstream connections kept per host")
	caFile := fs.String("ca-file", "", "trust this PEM file instead of SSL_CERT_FILE "+
		"(the system pool is read once per process, so an in-process test passes its own)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target, err := url.Parse(*upstream)
	if err != nil || target.Scheme != "https" || target.Host == "" {
		return fmt.Errorf("-upstream %q: must be an https URL", *upstream)
	}
	token, err := bufio.NewReader(in).ReadString('\n')
	token = strings.TrimSpace(token)
	if err != nil || token == "" {
		return errors.New("bare proxy: no Graph token on standard input")
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = *idle
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("bare proxy: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("bare proxy: -ca-file %s holds no PEM certificate", *caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	proxy := &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Del("X-Api-Key")
			r.Out.Header.Set("Authorization", "Bearer "+token)
		},
	}
	return serveChild(ctx, "bare proxy", *addr, bareHandler(proxy))
}

// serveChild serves handler on addr until ctx ends, then shuts down within 5 s: the body of
// each child server this program runs as.
func serveChild(ctx context.Context, name, addr string, handler http.Handler) error {
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdownCtx)
	}()
	if err := server.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// bareHandler answers the harness's two probes and proxies everything else.
func bareHandler(proxy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case bareReadyPath:
			_, _ = io.WriteString(w, "ready\n")
		case bareMallocsPath:
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			_, _ = io.WriteString(w, strconv.FormatUint(ms.Mallocs, 10)+"\n")
		default:
			proxy.ServeHTTP(w, r)
		}
	})
}
