package audit

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRequestReceived measures durable event recording on a real file: serially (one
// fsync per event) and with many concurrent callers sharing fsyncs (group commit).
func BenchmarkRequestReceived(b *testing.B) {
	benchmarks := []struct {
		name string
		// parallelism multiplies GOMAXPROCS to give the number of concurrent callers;
		// zero runs serially.
		parallelism int
	}{
		{"serial", 0},
		{"parallel-x1", 1},
		{"parallel-x16", 16},
		{"parallel-x64", 64},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			l, err := Open(Config{Path: filepath.Join(b.TempDir(), "audit.log")}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(context.Background())
			ctx := context.Background()
			before := l.Stats().Syncs
			b.ResetTimer()

			if bm.parallelism == 0 {
				for range b.N {
					if err := l.RequestReceived(ctx, testEvent("bench")); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bm.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := l.RequestReceived(ctx, testEvent("bench")); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}

			b.StopTimer()
			syncs := l.Stats().Syncs - before
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(syncs)/float64(b.N), "syncs/event")
		})
	}
}

// BenchmarkEncode encodes the ResponseComplete event of a typical PATCH (five properties,
// Graph's answer), with the line writer and, for comparison, with encoding/json.
func BenchmarkEncode(b *testing.B) {
	e := testEvent("6f1d2c3b-0a9e-4d8f-b7c6-5e4d3c2b1a09")
	e.Stage, e.UserAgent = StageResponseComplete, "Go-http-client/1.1"
	e.Route = "/v1/tunnel-sites/:siteId/servers/:serverId"
	e.SourceIPs = []string{"127.0.0.1"}
	e.RequestObject = map[string]any{
		"displayName":              "Display Name value",
		"tunnelServerHealthStatus": "healthy",
		"lastCheckinDateTime":      "2017-01-01T00:02:46.0431416-08:00",
		"agentImageDigest":         "Agent Image Digest value",
		"serverImageDigest":        "Server Image Digest value",
	}
	e.ResponseStatus = &ResponseStatus{Code: 200}
	e.Upstream = &Upstream{RequestID: "0d7c8a46-5f2b-4c1e-9a3d-6b8e2f4c1a70", Attempts: 1,
		Status: 200}
	e.RequestReceivedTimestamp = time.Now().UTC()
	e.StageTimestamp = e.RequestReceivedTimestamp.Add(3 * time.Millisecond)
	e.LatencySeconds = 0.003
	for _, bm := range []struct {
		name   string
		encode func(*Event) ([]byte, error)
	}{
		{"line-writer", encode},
		{"encoding-json", marshaledLine},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.encode(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
