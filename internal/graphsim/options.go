package graphsim

import "sync/atomic"

// ResponseOptions choose between answer forms that real Graph and Intune endpoints both use, so
// that a client can be tested against each. They start from Options and can be switched while
// the simulator runs (SetResponseOptions, PUT /_simulator/options) because a demo or a soak test
// should not need a restart to see how a client copes with the other form.
type ResponseOptions struct {
	// PatchNoContent answers a successful PATCH with 204 and no body instead of 200 + object.
	PatchNoContent bool `json:"patchNoContent"`
	// IntuneErrors puts Intune's JSON document, as a string, in the message of errors raised by
	// the Intune service (403, 404, 429, 5xx).
	IntuneErrors bool `json:"intuneErrors"`
	// OmitRetryAfter answers 429 without a Retry-After header.
	OmitRetryAfter bool `json:"omitRetryAfter"`
}

func (o Options) responseOptions() ResponseOptions {
	return ResponseOptions{PatchNoContent: o.PatchNoContent, IntuneErrors: o.IntuneErrors,
		OmitRetryAfter: o.OmitRetryAfter}
}

// responseSwitch holds the current ResponseOptions. Handlers read it on every request while the
// admin API may replace it, hence the atomic pointer rather than a field of opts.
type responseSwitch struct {
	current atomic.Pointer[ResponseOptions]
}

func newResponseSwitch(o ResponseOptions) *responseSwitch {
	var rs responseSwitch
	rs.set(o)
	return &rs
}

func (rs *responseSwitch) get() ResponseOptions { return *rs.current.Load() }

func (rs *responseSwitch) set(o ResponseOptions) { rs.current.Store(&o) }

// ResponseOptions returns the answer forms in use.
func (s *Simulator) ResponseOptions() ResponseOptions { return s.responses.get() }

// SetResponseOptions replaces the answer forms; the next request uses them.
func (s *Simulator) SetResponseOptions(o ResponseOptions) { s.responses.set(o) }
