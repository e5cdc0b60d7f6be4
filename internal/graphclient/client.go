// Package graphclient talks to Microsoft Graph for the gateway: it attaches an app-only token
// from azidentity, sends the tunnel-server requests through an azcore pipeline that retries
// within Graph's limits and the caller's deadline, and decodes Graph's answers and errors.
package graphclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"tunnelgateway/internal/validation"
)

// Options configures a Client.
type Options struct {
	// BaseURL is Graph's versioned root, e.g. https://graph.microsoft.com/beta.
	BaseURL string
	// Scope is the token scope, e.g. https://graph.microsoft.com/.default.
	Scope      string
	Credential azcore.TokenCredential
	// HTTPClient carries the requests; redirects are never followed. Default: a client with
	// dial, TLS and header timeouts.
	HTTPClient *http.Client
	// TryTimeout bounds one attempt. Default 30s.
	TryTimeout time.Duration
	// MaxRetries is how many times a retryable failure is tried again. Default 3; negative
	// means no retries.
	MaxRetries int
	// RetryDelay is the first backoff delay when Graph gives no Retry-After. Default 800ms.
	RetryDelay time.Duration
	// MaxListPages bounds how many pages one list follows. Default 50.
	MaxListPages int
	// Pacer, when set, is waited on before every write attempt and told of Graph's 429s.
	Pacer Pacer
	// Observer, when set, is told of every attempt and retry.
	Observer Observer
	// BreakerFailures consecutive failed calls open the circuit breaker. Default 5.
	BreakerFailures int
	// BreakerCooldown is how long the breaker stays open before a probe. Default 30s.
	BreakerCooldown time.Duration
	// OnBreakerChange, when set, is told when the breaker opens or closes.
	OnBreakerChange func(open bool)
}

// Pacer keeps writes within a budget shared by every replica.
type Pacer interface {
	// Wait blocks until a write may be sent and returns answered, to be called once the try
	// has ended, whatever its outcome: Graph counts a write when it arrives, which is between
	// the two, so the budget dates the write by its answer, and until then by the latest it can
	// arrive, maxFlight after the slot.
	Wait(ctx context.Context, maxFlight time.Duration) (answered func(), err error)
	// Penalize holds every write for d after Graph answered 429 with that Retry-After.
	Penalize(d time.Duration)
}

// Observer receives what the client does, for metrics.
type Observer interface {
	// Attempt reports one try: its operation, Graph's status (0 when none) and duration.
	Attempt(operation string, status int, d time.Duration)
	Retry(operation string)
}

// Client sends tunnel-server requests to Graph. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	pipeline runtime.Pipeline
	breaker  *breaker
	opts     Options
}

// Response is a successful answer from Graph.
type Response struct {
	Status    int
	Body      []byte
	RequestID string
	Attempts  int
}

// List is every item of a Graph collection, all pages followed.
type List struct {
	Context string
	Values  []json.RawMessage
	Pages   int
	// Attempts counts the tries of every page, retries included; it equals Pages when no
	// page needed a retry.
	Attempts   int
	RequestIDs []string
}

// Operations, used as metric labels and in the audit trail.
const (
	OpPatchServer = "patch_server"
	OpGetServer   = "get_server"
	OpListServers = "list_servers"
	OpListSites   = "list_sites"
)

// BreakerOpen reports whether the circuit breaker refuses calls to Graph right now.
func (c *Client) BreakerOpen() bool { return c.breaker.Open() }

// New builds a Client. The credential's token is requested lazily and cached by azcore.
func New(opts Options) (*Client, error) {
	base, err := url.Parse(strings.TrimSuffix(opts.BaseURL, "/"))
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("graph base url %q: must be an https URL", opts.BaseURL)
	}
	if opts.Credential == nil {
		return nil, errors.New("graph client needs a credential")
	}
	setDefaults(&opts)

	httpClient := *opts.HTTPClient
	httpClient.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}
	c := &Client{base: base, opts: opts,
		breaker: newBreaker(opts.BreakerFailures, opts.BreakerCooldown, opts.OnBreakerChange)}
	c.pipeline = runtime.NewPipeline("tunnelgateway", "1", runtime.PipelineOptions{
		PerRetry: []policy.Policy{
			attemptPolicy{c: c},
			runtime.NewBearerTokenPolicy(opts.Credential, []string{opts.Scope}, nil),
		},
	}, &policy.ClientOptions{
		// TryTimeout is applied by attemptPolicy, after the write budget's wait: azcore's own
		// per-try timeout would start before that wait and cut a paced write short.
		Retry: policy.RetryOptions{
			MaxRetries:    int32(opts.MaxRetries),
			RetryDelay:    opts.RetryDelay,
			MaxRetryDelay: 2 * time.Minute,
			ShouldRetry:   shouldRetry,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "tunnelgateway"},
		Transport: &httpClient,
	})
	return c, nil
}

func setDefaults(o *Options) {
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient()
	}
	if o.TryTimeout <= 0 {
		o.TryTimeout = 30 * time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 3
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = -1
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 800 * time.Millisecond
	}
	if o.MaxListPages <= 0 {
		o.MaxListPages = 50
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 30 * time.Second
	}
}

func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}}
}

// PatchServer sends the validated body as a PATCH of one tunnel server. requestID becomes
// Graph's client-request-id on every attempt.
func (c *Client) PatchServer(ctx context.Context, siteID, serverID string, body []byte,
	requestID string) (*Response, error) {
	u, err := c.serverURL(siteID, serverID)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, OpPatchServer, http.MethodPatch, u, body, requestID)
}

// GetServer reads one tunnel server.
func (c *Client) GetServer(ctx context.Context, siteID, serverID, requestID string) (*Response, error) {
	u, err := c.serverURL(siteID, serverID)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, OpGetServer, http.MethodGet, u, nil, requestID)
}

// ListSites reads every tunnel site, following @odata.nextLink.
func (c *Client) ListSites(ctx context.Context, requestID string) (*List, error) {
	return c.list(ctx, OpListSites, c.base.String()+"/deviceManagement/microsoftTunnelSites", requestID)
}

// ListServers reads every server of one site, following @odata.nextLink.
func (c *Client) ListServers(ctx context.Context, siteID, requestID string) (*List, error) {
	if err := checkID("site", siteID); err != nil {
		return nil, err
	}
	u := c.base.String() + "/deviceManagement/microsoftTunnelSites/" + url.PathEscape(siteID) +
		"/microsoftTunnelServers"
	return c.list(ctx, OpListServers, u, requestID)
}

func (c *Client) serverURL(siteID, serverID string) (string, error) {
	if err := checkID("site", siteID); err != nil {
		return "", err
	}
	if err := checkID("server", serverID); err != nil {
		return "", err
	}
	return c.base.String() + "/deviceManagement/microsoftTunnelSites/" + url.PathEscape(siteID) +
		"/microsoftTunnelServers/" + url.PathEscape(serverID), nil
}

// checkID refuses an id outside the path id pattern. Every id is checked again here, whatever
// the caller checked, because this is where URLs are built.
func checkID(kind, id string) error {
	if !validation.ValidID(id) {
		return fmt.Errorf("%s id %q is not a GUID", kind, id)
	}
	return nil
}

func (c *Client) list(ctx context.Context, op, first, requestID string) (*List, error) {
	out := &List{Values: []json.RawMessage{}}
	next := first
	for next != "" {
		if out.Pages == c.opts.MaxListPages {
			return nil, &ListTooLongError{Pages: c.opts.MaxListPages}
		}
		resp, err := c.do(ctx, op, http.MethodGet, next, nil, requestID)
		if err != nil {
			return nil, withEarlierAttempts(err, out.Attempts)
		}
		out.Attempts += resp.Attempts
		var page struct {
			Context  string            `json:"@odata.context"`
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(resp.Body, &page); err != nil {
			return nil, fmt.Errorf("decode graph list page: %w", err)
		}
		if out.Pages == 0 {
			out.Context = page.Context
		}
		out.Pages++
		out.Values = append(out.Values, page.Value...)
		out.RequestIDs = append(out.RequestIDs, resp.RequestID)

		next = page.NextLink
		if next != "" && !c.withinBase(next, first) {
			return nil, &UnexpectedLinkError{Link: next}
		}
	}
	return out, nil
}

// withEarlierAttempts adds the tries of the pages already read to a failed page's error, so
// the attempts it reports are those of the whole list, as a List's are.
func withEarlierAttempts(err error, earlier int) error {
	var ge *GraphError
	var te *TransportError
	switch {
	case errors.As(err, &ge):
		ge.Attempts += earlier
	case errors.As(err, &te):
		te.Attempts += earlier
	}
	return err
}

// withinBase reports whether a nextLink stays on the configured Graph host and on the path of
// the list it continues.
func (c *Client) withinBase(link, first string) bool {
	u, err := url.Parse(link)
	if err != nil || u.User != nil || u.Fragment != "" {
		return false
	}
	return u.Scheme == c.base.Scheme && u.Host == c.base.Host &&
		u.Path == strings.TrimPrefix(first, c.base.Scheme+"://"+c.base.Host)
}

type attemptsKey struct{}

func (c *Client) do(ctx context.Context, op, method, u string, body []byte,
	requestID string) (*Response, error) {
	st := &attemptState{op: op, body: body}
	if d, ok := ctx.Deadline(); ok {
		st.deadline = d
	}
	ctx = context.WithValue(ctx, attemptsKey{}, st)
	req, err := runtime.NewRequest(ctx, method, u)
	if err != nil {
		return nil, fmt.Errorf("build graph request: %w", err)
	}
	req.Raw().Header.Set("Accept", "application/json")
	req.Raw().Header.Set("client-request-id", requestID)
	if body != nil {
		rs := streamingBody(body)
		if err := req.SetBody(rs, "application/json"); err != nil {
			return nil, fmt.Errorf("set graph request body: %w", err)
		}
	}

	resp, err := c.breaker.run(func() (*http.Response, error) { return c.pipeline.Do(req) })
	n := int(st.count.Load())
	if err != nil {
		var open *BreakerOpenError
		if errors.As(err, &open) {
			return nil, open
		}
		return nil, c.classify(ctx, err, n)
	}
	payload, err := runtime.Payload(resp)
	if err != nil {
		return nil, &TransportError{Attempts: n, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ge := decodeGraphError(resp, payload)
		ge.Attempts = n
		return nil, ge
	}
	return &Response{
		Status:    resp.StatusCode,
		Body:      payload,
		RequestID: resp.Header.Get("request-id"),
		Attempts:  n,
	}, nil
}

func (c *Client) classify(ctx context.Context, err error, attempts int) error {
	var pe *PacerError
	if errors.As(err, &pe) {
		// The refused attempt is counted in attempts; the ones before it reached Graph.
		pe.Sent = attempts - 1
		return pe
	}
	// Past the budget's own refusal, only the bearer token policy fails without retrying.
	var nonRetriable interface{ NonRetriable() }
	if errors.As(err, &nonRetriable) {
		return &CredentialError{Err: err}
	}
	timeout := errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		timeout = true
	}
	return &TransportError{Timeout: timeout, Attempts: attempts, Err: err}
}

// PacerError is the write budget's refusal to let an attempt go; Err is the budget's own
// error (throttled with a truthful Retry-After, its store unavailable, or draining).
type PacerError struct {
	Err error
	// Sent counts the earlier attempts of the same call that did reach Graph: when it is not
	// zero the refused attempt was a retry, and the change may already have been applied.
	Sent int
}

func (e *PacerError) Error() string { return "write budget: " + e.Err.Error() }
func (e *PacerError) Unwrap() error { return e.Err }

// NonRetriable tells azcore's retry policy not to retry a refusal of the budget.
func (e *PacerError) NonRetriable() {}

// retryableStatus lists what Graph answers that is worth another attempt: throttling and the
// transient faults Graph documents. A PATCH is idempotent, so repeating it is safe.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable ||
		code == http.StatusGatewayTimeout
}

// shouldRetry also refuses a retry whose Retry-After lies past the caller's deadline: waiting
// would only end in a timeout, while answering now passes the truthful Retry-After on.
func shouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	if !retryableStatus(resp.StatusCode) {
		return false
	}
	if resp.Request == nil {
		return true
	}
	// The attempt's own context also carries the per-try timeout; the caller's deadline
	// was kept aside before the first try.
	st, _ := resp.Request.Context().Value(attemptsKey{}).(*attemptState)
	if st == nil || st.deadline.IsZero() {
		return true
	}
	deadline := st.deadline
	wait := retryAfter(resp.Header, time.Now())
	return time.Now().Add(wait).Before(deadline)
}

type attemptState struct {
	op       string
	body     []byte // the request's body; empty when none
	count    atomic.Int32
	deadline time.Time // the caller's deadline; zero when none
}

// attemptPolicy runs once per try: it numbers the attempt (the Graph SDKs' Retry-Attempt
// header), paces writes, bounds the try by TryTimeout and reports it to the observer.
type attemptPolicy struct{ c *Client }

func (p attemptPolicy) Do(req *policy.Request) (*http.Response, error) {
	st, _ := req.Raw().Context().Value(attemptsKey{}).(*attemptState)
	n := st.count.Add(1)
	if n > 1 {
		req.Raw().Header.Set("Retry-Attempt", strconv.Itoa(int(n-1)))
		if p.c.opts.Observer != nil {
			p.c.opts.Observer.Retry(st.op)
		}
	}

	// Pace writes: the wait counts against the caller's deadline only, not the try's, so the
	// write reaches Graph within TryTimeout of its slot.
	answered := func() {}
	if p.c.opts.Pacer != nil && req.Raw().Method == http.MethodPatch {
		var err error
		if answered, err = p.pace(req.Raw().Context()); err != nil {
			return nil, &PacerError{Err: err}
		}
		if answered == nil {
			answered = func() {}
		}
	}

	// Bound this try alone. The body download policy sits below this one, so the answer is
	// read in full before the try's context is cancelled. The retry policy already gave this
	// try its own copy of the request and headers, so only the context needs replacing.
	tryCtx, cancel := context.WithTimeout(req.Raw().Context(), p.c.opts.TryTimeout)
	defer cancel()
	start := time.Now()
	try := req.WithContext(tryCtx)
	if len(st.body) > 0 {
		// net/http sends the headers in a packet of their own before a body it does not know
		// to be in memory; azcore's body is a seekable wrapper it does not know. A reader it
		// knows puts a PATCH in one TLS record and one write instead of two (measured in
		// the CPU profile at saturation).
		try.Raw().Body = io.NopCloser(bytes.NewReader(st.body))
	}
	resp, err := try.Next()
	answered()
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if p.c.opts.Observer != nil {
		p.c.opts.Observer.Attempt(st.op, status, time.Since(start))
	}
	if status == http.StatusTooManyRequests && p.c.opts.Pacer != nil {
		p.c.opts.Pacer.Penalize(retryAfter(resp.Header, time.Now()))
	}
	return resp, err
}

// writeRoom is the time kept free for the write itself after its slot: a slot granted just
// before the caller's deadline would send a PATCH that cannot finish, leaving the caller
// unsure whether Graph applied it.
const writeRoom = time.Second

// pace waits for a write slot until the caller's deadline less the room the write needs (at
// most half of the time left), and returns the function that dates the write by its answer.
func (p attemptPolicy) pace(ctx context.Context) (answered func(), err error) {
	flight := p.c.opts.TryTimeout
	deadline, ok := ctx.Deadline()
	if !ok {
		return p.c.opts.Pacer.Wait(ctx, flight)
	}
	room := min(writeRoom, time.Until(deadline)/2)
	paceCtx, cancel := context.WithDeadline(ctx, deadline.Add(-room))
	defer cancel()
	return p.c.opts.Pacer.Wait(paceCtx, flight)
}

func streamingBody(b []byte) *bytesReadSeekCloser {
	r := &bytesReadSeekCloser{}
	r.Reset(b)
	return r
}

type bytesReadSeekCloser struct{ bytes.Reader }

func (bytesReadSeekCloser) Close() error { return nil }
