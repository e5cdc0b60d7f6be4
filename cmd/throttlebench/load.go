package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// target is where callers send updates: a base URL and the path of a server there.
type target struct {
	base string
	path func(server string) string
}

// result is what one variant's burst came to.
type result struct {
	name         string
	succeeded    int   // 2xx answers
	callers429   int   // 429 answers
	otherFailed  int   // any other status, or no answer
	simThrottled int64 // 429s the simulator sent
	applied      int   // servers holding their update's value afterwards
	total        time.Duration
	slowest      time.Duration
}

const tableHeader = "| variant | updates succeeded | 429s sent by Graph | 429s seen by callers | " +
	"other failures | applied at Graph | total time | vs minimum | slowest update |\n" +
	"| --- | --- | --- | --- | --- | --- | --- | --- | --- |"

func (r result) row(minimum time.Duration) string {
	ratio := "n/a"
	if minimum > 0 {
		ratio = fmt.Sprintf("%.3f×", r.total.Seconds()/minimum.Seconds())
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %s | %s | %s |", r.name, r.succeeded,
		r.simThrottled, r.callers429, r.otherFailed, r.applied,
		r.total.Round(time.Millisecond), ratio, r.slowest.Round(time.Millisecond))
}

// sendBurst has s.callers goroutines send s.writes updates, one server each, spread over the
// targets in turn, and counts the answers.
func sendBurst(ctx context.Context, targets []target, s settings) result {
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: s.callers, MaxConnsPerHost: s.callers}}
	defer client.CloseIdleConnections()

	jobs := make(chan int)
	var mu sync.Mutex
	var r result
	var wg sync.WaitGroup
	start := time.Now()
	for range s.callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				status, elapsed := update(ctx, client, targets[i%len(targets)], i)
				mu.Lock()
				r.count(status, elapsed)
				mu.Unlock()
			}
		}()
	}
	for i := range s.writes {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	r.total = time.Since(start)
	return r
}

func (r *result) count(status int, elapsed time.Duration) {
	switch {
	case status >= 200 && status < 300:
		r.succeeded++
	case status == http.StatusTooManyRequests:
		r.callers429++
	default:
		r.otherFailed++
	}
	r.slowest = max(r.slowest, elapsed)
}

// update sends update i and returns the status (0 when no answer came) and its duration.
func update(ctx context.Context, client *http.Client, t target, i int) (int, time.Duration) {
	start := time.Now()
	body := strings.NewReader(`{"displayName":"` + updateName(i) + `"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, t.base+t.path(serverID(i)), body)
	if err != nil {
		return 0, time.Since(start)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", apiKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// machine describes where the run happened.
func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, value, ok := strings.Cut(sc.Text(), ":"); ok &&
				strings.TrimSpace(name) == "model name" {
				model = strings.TrimSpace(value)
				break
			}
		}
	}
	return fmt.Sprintf("machine: %d CPUs (%s), %s %s/%s", runtime.NumCPU(), model,
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
