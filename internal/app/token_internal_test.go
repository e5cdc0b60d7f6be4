package app

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"tunnelgateway/internal/config"
	"tunnelgateway/internal/metrics"
)

// outageCredential fails until healed, as Entra ID does during an outage at start-up. The
// token it then gives is not a JWT: only whether a token came matters here.
type outageCredential struct {
	healed atomic.Bool
	calls  atomic.Int32
}

func (c *outageCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	if !c.healed.Load() {
		return azcore.AccessToken{}, errors.New("entra id unavailable")
	}
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestRetryTokenRecoversReadiness checks that a gateway whose first token request failed asks
// again by itself, so it does not stay unready for good.
func TestRetryTokenRecoversReadiness(t *testing.T) {
	t.Parallel()
	inner := &outageCredential{}
	cfg, err := config.FromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{cfg: cfg, log: zap.NewNop(),
		cred: &observedCredential{inner: inner, metrics: metrics.New(prometheus.NewRegistry())}}

	g.checkToken(context.Background())
	if g.cred.lastError() == nil {
		t.Fatal("the first token request failed but no error was kept")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.retryToken(ctx, 10*time.Millisecond)

	inner.healed.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for g.cred.lastError() != nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := g.cred.lastError(); err != nil {
		t.Fatalf("still no token after the outage ended: %v", err)
	}

	// Once a token is held, the loop stops asking.
	calls := inner.calls.Load()
	time.Sleep(100 * time.Millisecond)
	if got := inner.calls.Load(); got != calls {
		t.Errorf("token requested %d more times while one was held", got-calls)
	}
}

// fixedCredential hands out one token that expires an hour after it was made, as Entra ID's
// tokens do.
type fixedCredential struct{ expiresOn time.Time }

func (c fixedCredential) GetToken(context.Context,
	policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t", ExpiresOn: c.expiresOn}, nil
}

// TestTokenLifetimeCountsDown acquires one token and reads the lifetime gauge twice: azcore
// reuses a token until shortly before it expires, so the gauge must fall between scrapes
// without a new acquisition.
func TestTokenLifetimeCountsDown(t *testing.T) {
	t.Parallel()
	m := metrics.New(prometheus.NewRegistry())
	cred := &observedCredential{inner: fixedCredential{expiresOn: time.Now().Add(time.Hour)},
		metrics: m}
	if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{}); err != nil {
		t.Fatal(err)
	}

	first := testutil.ToFloat64(m.TokenRemainingLifetime)
	time.Sleep(1500 * time.Millisecond)
	second := testutil.ToFloat64(m.TokenRemainingLifetime)
	if first < 3590 || first > 3600 {
		t.Errorf("lifetime right after acquisition: got %v, want about 3600", first)
	}
	if fell := first - second; fell < 1 {
		t.Errorf("lifetime after 1.5s: got %v then %v, want it to fall by at least 1s",
			first, second)
	}
}
