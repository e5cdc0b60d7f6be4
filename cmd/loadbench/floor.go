//go:build linux

package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"time"
)

// The floor server runs as `loadbench floor-server -addr ...`, a child process of the harness.
const (
	floorCommand = "floor-server"
	// floorHold is how long the floor server keeps each request, as if waiting on Graph: long
	// enough that nearly all of the in-flight phase's requests sit in the server at once.
	floorHold = 100 * time.Millisecond
)

// floorAnswer is a small JSON body, as Graph's answer would be.
var floorAnswer = []byte(`{"id":"b5cf0aee-0aee-b5cf-ee0a-cfb5ee0acfb5"}` + "\n")

// serveFloor is what any Go net/http server costs with many requests in flight: it reads each
// body, holds the request floorHold and answers 200, with none of the gateway's work and no
// upstream. Its peak resident set is the floor under both the bare proxy and the gateway.
func serveFloor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(floorCommand, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen host:port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == bareReadyPath {
			_, _ = io.WriteString(w, "ready\n")
			return
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(floorHold):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(floorAnswer)
	})
	return serveChild(ctx, "floor server", *addr, handler)
}
