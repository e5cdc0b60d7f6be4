//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// Bounds on a child's life: how long it may take to become ready and to stop.
const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 15 * time.Second
	pollEvery    = 2 * time.Millisecond
)

// child is a measured server running as its own process, so that its memory and CPU are its
// own and not the simulator's or the load generator's.
type child struct {
	name     string
	baseURL  string // where the load goes
	adminURL string // probes and allocation counters
	logPath  string
	cmd      *exec.Cmd
	proc     procfs.Proc
	exited   chan struct{}
	waitErr  error
}

// start spawns cmd and returns how long it took from spawn until readyURL answered 200.
func (c *child) start(cmd *exec.Cmd, readyURL string) (time.Duration, error) {
	logFile, err := os.Create(c.logPath)
	if err != nil {
		return 0, fmt.Errorf("create %s log: %w", c.name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The child dies with this program, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	c.cmd = cmd

	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", c.name, err)
	}
	c.exited = make(chan struct{})
	go func() { c.waitErr = cmd.Wait(); close(c.exited) }()
	if c.proc, err = procfs.NewProc(cmd.Process.Pid); err != nil {
		c.stop()
		return 0, fmt.Errorf("read %s process: %w", c.name, err)
	}
	if err := c.awaitReady(readyURL); err != nil {
		c.stop()
		return 0, fmt.Errorf("%w; its log ends with:\n%s", err, c.logTail(20))
	}
	return time.Since(began), nil
}

func (c *child) awaitReady(readyURL string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited before it was ready: %v", c.name, c.waitErr)
		default:
		}
		resp, err := client.Get(readyURL)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(pollEvery)
	}
	return fmt.Errorf("%s not ready within %s", c.name, readyTimeout)
}

// stop asks the child to drain and exit, kills it if it does not within stopTimeout, and
// returns the reason it did not exit cleanly.
func (c *child) stop() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.exited:
		return c.waitErr
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		if c.waitErr != nil {
			return fmt.Errorf("%s exited with %w", c.name, c.waitErr)
		}
		return nil
	case <-time.After(stopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within %s; killed", c.name, stopTimeout)
	}
}

// usage is a snapshot of the child's resources.
type usage struct {
	rss     uint64 // resident set now, bytes
	rssFile uint64 // the part of rss that maps files: the program's code and read-only data
	peakRSS uint64 // VmHWM: the largest resident set since start, bytes
	cpu     time.Duration
	fds     int
}

func (c *child) usage() (usage, error) {
	status, err := c.proc.NewStatus()
	if err != nil {
		return usage{}, fmt.Errorf("read %s status: %w", c.name, err)
	}
	stat, err := c.proc.Stat()
	if err != nil {
		return usage{}, fmt.Errorf("read %s stat: %w", c.name, err)
	}
	fds, err := c.proc.FileDescriptorsLen()
	if err != nil {
		return usage{}, fmt.Errorf("count %s descriptors: %w", c.name, err)
	}
	return usage{rss: status.VmRSS, rssFile: status.RssFile, peakRSS: status.VmHWM,
		cpu: time.Duration(stat.CPUTime() * float64(time.Second)), fds: fds}, nil
}

// resetPeak makes VmHWM start again from the current resident set (Linux clear_refs 5), so
// that the next reading is the peak of one phase, not of the process's whole life.
func (c *child) resetPeak() error {
	path := fmt.Sprintf("/proc/%d/clear_refs", c.cmd.Process.Pid)
	if err := os.WriteFile(path, []byte("5"), 0); err != nil {
		return fmt.Errorf("reset %s peak RSS: %w", c.name, err)
	}
	return nil
}

// mallocs reads the child's count of heap allocations since start: the gateway's
// go_memstats_mallocs_total on its metrics listener, the bare proxy's own counter.
func (c *child) mallocs() (uint64, error) {
	path, metric := bareMallocsPath, ""
	if c.name == "gateway" {
		path, metric = "/metrics", "go_memstats_mallocs_total "
	}
	resp, err := http.Get(c.adminURL + path)
	if err != nil {
		return 0, fmt.Errorf("read %s allocations: %w", c.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), metric)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line), 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s allocations %q: %w", c.name, line, err)
		}
		return uint64(v), nil
	}
	return 0, fmt.Errorf("%s reported no allocation count at %s", c.name, path)
}

// logTail returns the last n lines the child wrote, for error messages.
func (c *child) logTail(n int) string {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeLoopbackAddr finds a free loopback port. Another process could take it before the child
// binds it; on an otherwise quiet machine that does not happen, and the child then fails loudly.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", errors.Join(fmt.Errorf("release port %s", addr), err)
	}
	return addr, nil
}
