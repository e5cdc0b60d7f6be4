package audit

import (
	"context"
	"path/filepath"
	"testing"
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
