package app

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"tunnelgateway/internal/writebudget"
)

// GetToken asks the wrapped credential and records the outcome.
func (o *observedCredential) GetToken(ctx context.Context,
	opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := o.inner.GetToken(ctx, opts)
	if err != nil {
		o.metrics.TokenAcquired(false, time.Time{})
		o.lastErr.Store(&err)
		return tok, err
	}
	o.metrics.TokenAcquired(true, tok.ExpiresOn)
	o.lastErr.Store(nil)
	return tok, nil
}

// pacer adapts the write budget to the Graph client's Pacer.
type pacer struct {
	budget *writebudget.Budget
	log    *zap.Logger
	// wait, when set, observes how long each write attempt waited, granted or refused.
	wait prometheus.Observer
}

// Wait takes a write slot dated by the write's answer: the returned func records the answer.
func (p pacer) Wait(ctx context.Context, maxFlight time.Duration) (func(), error) {
	start := time.Now()
	slot, err := p.budget.WaitSlot(ctx, maxFlight)
	if p.wait != nil {
		p.wait.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return nil, err
	}
	return func() { p.answered(slot) }, nil
}

// answered dates the write by its answer, even when the caller has gone: Graph counted it.
func (p pacer) answered(slot *writebudget.Slot) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := slot.Answered(ctx); err != nil {
		p.log.Warn("failed to date a write by its answer; it keeps its slot until its try "+
			"timeout", zap.Error(err))
	}
}

func (p pacer) Penalize(d time.Duration) {
	if d <= 0 {
		// Graph throttled without saying for how long; hold writes for a second at least.
		d = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.budget.Penalize(ctx, d); err != nil {
		p.log.Warn("failed to slow the shared write budget after a graph 429", zap.Error(err))
	}
}
