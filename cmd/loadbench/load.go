//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// loadResult summarizes one vegeta run.
type loadResult struct {
	requests   uint64
	throughput float64 // successful requests per second
	success    float64 // share of 2xx answers
	p50, p99   time.Duration
	max        time.Duration
	codes      map[string]int
	errors     []string
}

// load is one bounded vegeta run: workers concurrent requests at most, for d, then it stops.
type load struct {
	name    string
	target  vegeta.Target
	rate    vegeta.Rate // zero Freq: as fast as the workers go
	workers int
	d       time.Duration
}

func (l load) run(ctx context.Context) loadResult {
	maxWorkers := l.workers
	initial := l.workers
	if l.rate.Freq > 0 {
		initial = min(l.workers, 10) // vegeta adds workers when the rate needs them
	}
	atk := vegeta.NewAttacker(
		vegeta.Workers(uint64(initial)),
		vegeta.MaxWorkers(uint64(maxWorkers)),
		vegeta.Connections(maxWorkers),
		vegeta.KeepAlive(true),
		vegeta.HTTP2(false),
		vegeta.Timeout(30*time.Second),
	)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	var m vegeta.Metrics
	for res := range atk.Attack(vegeta.NewStaticTargeter(l.target), l.rate, l.d, l.name) {
		m.Add(res)
	}
	m.Close()
	return loadResult{
		requests:   m.Requests,
		throughput: m.Throughput,
		success:    m.Success,
		p50:        m.Latencies.P50,
		p99:        m.Latencies.P99,
		max:        m.Latencies.Max,
		codes:      m.StatusCodes,
		errors:     m.Errors,
	}
}

// statusText lists the answers by status, for the table's notes; 0 is no answer at all.
func (r loadResult) statusText() string {
	codes := slices.Sorted(maps.Keys(r.codes))
	parts := make([]string, 0, len(codes))
	for _, code := range codes {
		label := code
		if code == "0" {
			label = "no-answer"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", label, r.codes[code]))
	}
	return strings.Join(parts, " ")
}

// sampler records the largest resident set and descriptor count of a child while a run goes.
type sampler struct {
	maxRSS uint64
	// maxRSSFile is the file-mapped part of the largest sample: pages of the program itself,
	// which no setting of the Go runtime changes.
	maxRSSFile uint64
	maxFDs     int
	err        error
}

// sampleDuring runs fn while reading c's usage every 50ms.
func sampleDuring(c *child, fn func()) sampler {
	var s sampler
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if u, err := c.usage(); err != nil {
				s.err = err
			} else {
				if u.rss > s.maxRSS {
					s.maxRSS, s.maxRSSFile = u.rss, u.rssFile
				}
				s.maxFDs = max(s.maxFDs, u.fds)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(done)
	<-finished
	return s
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

// openConnections keeps n keep-alive connections open to the target, one client each, as n
// callers would, and sends the target's request over them at rate per second in total for d:
// every connection is used and stays open while only a few requests are in flight at once.
type openConnections struct {
	target vegeta.Target
	n      int
	rate   int
	d      time.Duration
}

// openResult counts the requests sent over the open connections.
type openResult struct {
	ok, failed int
	firstErr   error
}

func (o openConnections) run(ctx context.Context) openResult {
	ctx, cancel := context.WithTimeout(ctx, o.d)
	defer cancel()
	period := time.Duration(float64(o.n) / float64(o.rate) * float64(time.Second))
	results := make(chan openResult, o.n)
	for i := range o.n {
		// Spread the first requests evenly over one period, then repeat every period.
		offset := period * time.Duration(i) / time.Duration(o.n)
		go func() { results <- o.caller(ctx, offset, period) }()
	}
	var total openResult
	for range o.n {
		r := <-results
		total.ok += r.ok
		total.failed += r.failed
		if total.firstErr == nil {
			total.firstErr = r.firstErr
		}
	}
	return total
}

// caller is one client with its own connection; it closes it only when the run ends.
func (o openConnections) caller(ctx context.Context, offset, period time.Duration) openResult {
	transport := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var r openResult
	next := time.NewTimer(offset)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return r
		case <-next.C:
		}
		if err := o.send(ctx, client); err != nil {
			if ctx.Err() != nil {
				return r
			}
			r.failed++
			if r.firstErr == nil {
				r.firstErr = err
			}
		} else {
			r.ok++
		}
		next.Reset(period)
	}
}

func (o openConnections) send(ctx context.Context, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, o.target.Method, o.target.URL,
		bytes.NewReader(o.target.Body))
	if err != nil {
		return err
	}
	req.Header = o.target.Header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
