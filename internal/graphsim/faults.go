package graphsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault kinds, as Faults.Sequence names them.
const (
	FaultNone         = "ok"          // pass the request through
	FaultReset        = "reset"       // close the connection with a TCP reset, no response
	FaultStall        = "stall"       // send nothing until the client gives up or StallFor ends
	FaultAppliedError = "applied-500" // apply a PATCH, then answer 500
	// "500", "502", "503" and "504" answer that status without touching the store; a Graph
	// error code may follow a colon, as in "503:CancelledOnServiceTimeout".
)

// DefaultStallFor is how long a stalled response waits before answering 504.
const DefaultStallFor = 2 * time.Minute

// Faults are injected into Graph requests (not into Entra or admin requests), after the token
// and the throttling limits were checked. The scripted Sequence takes precedence: each Graph
// request consumes its first entry. Rates are probabilities in [0, 1], tried in the order
// reset, stall, applied-500 (PATCH only), status.
type Faults struct {
	// Latency is added before every Graph response.
	Latency time.Duration
	// Methods limits faults (not latency) to these HTTP methods; empty means all.
	Methods []string
	// Sequence scripts the next requests: "ok", "500", "502", "503", "504", "reset",
	// "stall" or "applied-500". A status may carry the Graph error code to answer with, as in
	// "503:CancelledOnServiceTimeout"; without one it gets its usual code (ServiceUnavailable).
	Sequence []string
	// ErrorRate answers ErrorStatus (default 503) with ErrorCode (default: the status's usual
	// code) to this share of requests.
	ErrorRate   float64
	ErrorStatus int
	ErrorCode   string
	// ResetRate resets the connection for this share of requests.
	ResetRate float64
	// StallRate stalls this share of requests for StallFor (default 2m), then answers 504.
	StallRate float64
	StallFor  time.Duration
	// AppliedErrorRate applies this share of PATCHes and answers 500 anyway.
	AppliedErrorRate float64
}

var faultStatuses = []string{"500", "502", "503", "504"}

func (f Faults) validate() error {
	var problems []error
	for name, rate := range map[string]float64{"error rate": f.ErrorRate, "reset rate": f.ResetRate,
		"stall rate": f.StallRate, "applied error rate": f.AppliedErrorRate} {
		if rate < 0 || rate > 1 {
			problems = append(problems, fmt.Errorf("faults %s %v: must be within [0, 1]", name, rate))
		}
	}
	if f.ErrorStatus != 0 && !slices.Contains(faultStatuses, strconv.Itoa(f.ErrorStatus)) {
		problems = append(problems, fmt.Errorf("faults error status %d: must be 500, 502, 503 "+
			"or 504", f.ErrorStatus))
	}
	if f.ErrorCode != "" && !graphErrorCode.MatchString(f.ErrorCode) {
		problems = append(problems, fmt.Errorf("faults error code %q: must be a Graph error "+
			"code such as CancelledOnServiceTimeout (letters and digits)", f.ErrorCode))
	}
	for i, kind := range f.Sequence {
		if !validFaultKind(kind) {
			problems = append(problems, fmt.Errorf("faults sequence[%d] %q: must be ok, 500, 502, "+
				"503, 504, reset, stall or applied-500, a status optionally followed by "+
				":ErrorCode", i, kind))
		}
	}
	if f.Latency < 0 || f.StallFor < 0 {
		problems = append(problems, errors.New("faults latency and stall duration must not be negative"))
	}
	return errors.Join(problems...)
}

// graphErrorCode is what a Graph error code looks like (InvalidAuthenticationToken,
// invalidRequest); the bound keeps a typo from becoming a page of text.
var graphErrorCode = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,99}$`)

func validFaultKind(entry string) bool {
	kind, code, hasCode := strings.Cut(entry, ":")
	if hasCode {
		return slices.Contains(faultStatuses, kind) && graphErrorCode.MatchString(code)
	}
	return slices.Contains([]string{FaultNone, FaultReset, FaultStall, FaultAppliedError}, kind) ||
		slices.Contains(faultStatuses, kind)
}

// faultsJSON is Faults on the admin API, with durations as strings such as "250ms".
type faultsJSON struct {
	Latency          string   `json:"latency,omitempty"`
	Methods          []string `json:"methods,omitempty"`
	Sequence         []string `json:"sequence,omitempty"`
	ErrorRate        float64  `json:"errorRate,omitempty"`
	ErrorStatus      int      `json:"errorStatus,omitempty"`
	ErrorCode        string   `json:"errorCode,omitempty"`
	ResetRate        float64  `json:"resetRate,omitempty"`
	StallRate        float64  `json:"stallRate,omitempty"`
	StallFor         string   `json:"stallFor,omitempty"`
	AppliedErrorRate float64  `json:"appliedErrorRate,omitempty"`
}

// MarshalJSON writes durations as strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	doc := faultsJSON{Methods: f.Methods, Sequence: f.Sequence, ErrorRate: f.ErrorRate,
		ErrorStatus: f.ErrorStatus, ErrorCode: f.ErrorCode, ResetRate: f.ResetRate,
		StallRate: f.StallRate, AppliedErrorRate: f.AppliedErrorRate}
	if f.Latency != 0 {
		doc.Latency = f.Latency.String()
	}
	if f.StallFor != 0 {
		doc.StallFor = f.StallFor.String()
	}
	return json.Marshal(doc)
}

// UnmarshalJSON reads durations as strings.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var doc faultsJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	latency, err := parseOptionalDuration(doc.Latency)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	stallFor, err := parseOptionalDuration(doc.StallFor)
	if err != nil {
		return fmt.Errorf("stallFor: %w", err)
	}
	*f = Faults{Latency: latency, Methods: doc.Methods, Sequence: doc.Sequence,
		ErrorRate: doc.ErrorRate, ErrorStatus: doc.ErrorStatus, ErrorCode: doc.ErrorCode,
		ResetRate: doc.ResetRate, StallRate: doc.StallRate, StallFor: stallFor,
		AppliedErrorRate: doc.AppliedErrorRate}
	return nil
}

// faultInjector holds the current faults and consumes the scripted sequence.
type faultInjector struct {
	mu     sync.Mutex
	faults Faults
}

func newFaultInjector(f Faults) *faultInjector {
	f.Sequence = slices.Clone(f.Sequence)
	return &faultInjector{faults: f}
}

func (fi *faultInjector) set(f Faults) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f.Sequence = slices.Clone(f.Sequence)
	f.Methods = slices.Clone(f.Methods)
	fi.faults = f
}

func (fi *faultInjector) get() Faults {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := fi.faults
	f.Sequence = slices.Clone(f.Sequence)
	f.Methods = slices.Clone(f.Methods)
	return f
}

// decision is what happens to one request.
type decision struct {
	latency  time.Duration
	kind     string // FaultNone or one of the fault kinds
	code     string // the Graph error code of a status fault; empty for the status's usual one
	stallFor time.Duration
}

// decide picks the fault for a request with the given method.
func (fi *faultInjector) decide(method string) decision {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := &fi.faults
	d := decision{latency: f.Latency, kind: FaultNone, stallFor: f.StallFor}
	if d.stallFor == 0 {
		d.stallFor = DefaultStallFor
	}
	if len(f.Methods) > 0 && !slices.ContainsFunc(f.Methods, func(m string) bool {
		return strings.EqualFold(m, method)
	}) {
		return d
	}
	if len(f.Sequence) > 0 {
		d.kind, d.code, _ = strings.Cut(f.Sequence[0], ":")
		f.Sequence = f.Sequence[1:]
		return d
	}
	switch {
	case hit(f.ResetRate):
		d.kind = FaultReset
	case hit(f.StallRate):
		d.kind = FaultStall
	case method == "PATCH" && hit(f.AppliedErrorRate):
		d.kind = FaultAppliedError
	case hit(f.ErrorRate):
		d.kind, d.code = strconv.Itoa(intOr(f.ErrorStatus, 503)), f.ErrorCode
	}
	return d
}

func hit(rate float64) bool { return rate > 0 && rand.Float64() < rate }

func intOr(v, fallback int) int {
	if v == 0 {
		return fallback
	}
	return v
}
