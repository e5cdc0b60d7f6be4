package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/metrics"
	"tunnelgateway/internal/policy"
	"tunnelgateway/internal/validation"
	"tunnelgateway/internal/writebudget"
)

// TestCountRefusal checks which refusals count as caller denials: only an authentication
// failure or a policy denial. A body that never arrived and a caller that went away are not
// the caller being refused, and a bad body is a validation failure.
func TestCountRefusal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		err             error
		wantDenials     map[string]float64
		wantValidations int
	}{
		{name: "authentication failure",
			err: &callers.Error{Status: http.StatusUnauthorized,
				Reason: callers.ReasonMissingCredentials},
			wantDenials: map[string]float64{callers.ReasonMissingCredentials: 1}},
		{name: "policy denial",
			err:         &policy.Denied{Reason: policy.ReasonPropertyRefused},
			wantDenials: map[string]float64{policy.ReasonPropertyRefused: 1}},
		{name: "invalid body",
			err: &validation.Error{Kind: validation.Invalid, Fields: []validation.FieldError{
				{Pointer: "/displayName", Rule: validation.RulePattern}}},
			wantValidations: 1},
		{name: "body ended early", err: &bodyReadError{err: io.ErrUnexpectedEOF}},
		{name: "caller went away", err: context.Canceled},
		{name: "caller went away, wrapped",
			err: errors.Join(errors.New("read body"), context.Canceled)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := metrics.New(prometheus.NewRegistry())
			s := &server{Deps: Deps{Metrics: m}}
			s.countRefusal(tt.err)

			got, want := testutil.CollectAndCount(m.CallerDenials), len(tt.wantDenials)
			if got != want {
				t.Errorf("caller_denials_total series: got %d, want %d", got, want)
			}
			for reason, want := range tt.wantDenials {
				if got := testutil.ToFloat64(m.CallerDenials.WithLabelValues(reason)); got != want {
					t.Errorf("caller_denials_total{reason=%q}: got %v, want %v", reason, got, want)
				}
			}
			got = testutil.CollectAndCount(m.ValidationFailures)
			if got != tt.wantValidations {
				t.Errorf("validation_failures_total series: got %d, want %d", got,
					tt.wantValidations)
			}
		})
	}
}

// TestDrainingRefusal checks what a write refused by a draining budget is told: a first
// attempt never left, while a retry's earlier attempt reached Graph and may have applied it.
func TestDrainingRefusal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		sent         int
		wantDetail   string
		wantAttempts int
	}{
		{name: "first attempt", sent: 0, wantDetail: "another instance will take it"},
		{name: "retry", sent: 2, wantDetail: "may have been applied", wantAttempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := &graphclient.PacerError{Err: writebudget.ErrDraining, Sent: tt.sent}
			f := classify(err)
			if f.status != http.StatusServiceUnavailable ||
				!strings.Contains(f.detail, tt.wantDetail) {
				t.Errorf("classify: got %d %q, want 503 saying %q", f.status, f.detail,
					tt.wantDetail)
			}
			got := 0
			if up := upstreamOf(err); up != nil {
				got = up.Attempts
			}
			if got != tt.wantAttempts {
				t.Errorf("upstream attempts: got %d, want %d", got, tt.wantAttempts)
			}
		})
	}
}
