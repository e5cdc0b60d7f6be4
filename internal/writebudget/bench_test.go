package writebudget_test

import (
	"context"
	"testing"
	"time"

	"tunnelgateway/internal/writebudget"
)

// BenchmarkWait measures what a granted Wait costs when the limit never binds.
func BenchmarkWait(b *testing.B) {
	cfg := writebudget.Config{Limit: 1_000_000, Window: 10 * time.Millisecond}
	for _, backend := range backends {
		b.Run(backend.name, func(b *testing.B) {
			budget := newBudgets(b, backend.name, cfg, 1)[0]
			ctx := context.Background()
			for b.Loop() {
				if err := budget.Wait(ctx); err != nil {
					b.Fatalf("Wait() error: %v", err)
				}
			}
		})
		b.Run(backend.name+"-parallel", func(b *testing.B) {
			budget := newBudgets(b, backend.name, cfg, 1)[0]
			ctx := context.Background()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := budget.Wait(ctx); err != nil {
						b.Errorf("Wait() error: %v", err)
						return
					}
				}
			})
		})
	}
}
