package graphclient

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerOpenError is returned without calling Graph while the circuit breaker is open:
// Graph failed too often in a row, and waiting callers are better served by a quick 503.
type BreakerOpenError struct {
	// RetryAfter is when the breaker lets a probe through.
	RetryAfter time.Duration
}

func (e *BreakerOpenError) Error() string {
	return "circuit breaker open: graph keeps failing; not calling it for now"
}

// errGraphFailed marks a 5xx answer as a failure for the breaker; the answer itself is kept.
var errGraphFailed = errors.New("graph answered 5xx")

// breaker opens after consecutive Graph failures (5xx after retries, or no answer) and lets
// one probe through after its cool-down. The caller's own errors, the budget's refusals and
// token failures do not count: they say nothing about Graph's health.
type breaker struct {
	cb       *gobreaker.CircuitBreaker[*http.Response]
	cooldown time.Duration
	openedAt atomic.Int64
}

func newBreaker(failures int, cooldown time.Duration, onChange func(open bool)) *breaker {
	b := &breaker{cooldown: cooldown}
	b.cb = gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{
		Name:        "graph",
		MaxRequests: 1,
		Timeout:     cooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(failures) },
		IsSuccessful: func(err error) bool {
			return err == nil || !errors.Is(err, errGraphFailed) && !isTransportFailure(err)
		},
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(time.Now().UnixNano())
			}
			if onChange != nil {
				onChange(to == gobreaker.StateOpen)
			}
		},
	})
	return b
}

// Open reports whether the breaker currently refuses calls.
func (b *breaker) Open() bool { return b.cb.State() == gobreaker.StateOpen }

func (b *breaker) run(call func() (*http.Response, error)) (*http.Response, error) {
	resp, err := b.cb.Execute(func() (*http.Response, error) {
		resp, err := call()
		if err == nil && resp.StatusCode >= 500 {
			return resp, errGraphFailed
		}
		return resp, err
	})
	switch {
	case errors.Is(err, errGraphFailed):
		return resp, nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		wait := b.cooldown - time.Since(time.Unix(0, b.openedAt.Load()))
		return nil, &BreakerOpenError{RetryAfter: max(wait, time.Second)}
	}
	return resp, err
}

func isTransportFailure(err error) bool {
	var pe *PacerError
	var nonRetriable interface{ NonRetriable() }
	if errors.As(err, &pe) || errors.As(err, &nonRetriable) || errors.Is(err, context.Canceled) {
		return false
	}
	return true
}
