package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/internal/testenv"
)

// rssMiB is the resident set size of process pid, from /proc.
func rssMiB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", l, err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// httpSeries counts the series of orthotriage_http_requests_total in a
// /metrics scrape, and returns the scrape's size.
func httpSeries(t *testing.T, s *service) (series, bytes int) {
	t.Helper()
	status, body := call(t, http.MethodGet, s.base+"/metrics", "")
	if status != 200 {
		t.Fatalf("/metrics = %d", status)
	}
	return strings.Count(body, "\northotriage_http_requests_total{"), len(body)
}

// TestRandomMethodsKeepMemoryFlat sends 1,000 requests with random 100 KB
// methods over real TCP to the real binary: the method label stays one of a
// fixed set, the series count does not grow with them, and neither does the
// service's memory.
func TestRandomMethodsKeepMemoryFlat(t *testing.T) {
	const requests, methodBytes, conns = 1000, 100 << 10, 4
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_DISABLED=true")
	pid := s.cmd.Process.Pid
	paths := []string{"/healthz", "/readyz", "/cds-services", "/nowhere"}
	for _, p := range paths { // every route and status once with a standard method
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			call(t, m, s.base+p, "")
		}
	}
	seriesBefore, scrapeBefore := httpSeries(t, s)
	rssBefore := rssMiB(t, pid)

	addr := strings.TrimPrefix(s.base, "http://")
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	var sampleMu sync.Mutex
	var samples []string // a prefix of some methods sent, looked for in the logs
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			method := make([]byte, methodBytes)
			var conn net.Conn
			var rd *bufio.Reader
			for i := w; i < requests; i += conns {
				if conn == nil {
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						errs <- err
						return
					}
					conn, rd = c, bufio.NewReader(c)
				}
				for j := range method {
					method[j] = byte('A' + rng.IntN(26))
				}
				if i%100 == w {
					sampleMu.Lock()
					samples = append(samples, string(method[:256]))
					sampleMu.Unlock()
				}
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, paths[i%len(paths)], addr); err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
					return
				}
				resp, err := http.ReadResponse(rd, nil)
				if err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
					errs <- fmt.Errorf("request %d on %s: status %d, want 405 or 404", i, paths[i%len(paths)], resp.StatusCode)
					return
				}
				if len(body) > 2048 {
					errs <- fmt.Errorf("request %d: a %d-byte error answer echoes the method unbounded", i, len(body))
					return
				}
				if resp.Close {
					conn.Close()
					conn = nil
				}
			}
			if conn != nil {
				conn.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seriesAfter, scrapeAfter := httpSeries(t, s)
	rssAfter := rssMiB(t, pid)
	t.Logf("%d requests with random %d KiB methods: rss before %.1f MiB after %.1f MiB; orthotriage_http_requests_total series before %d after %d; /metrics %d bytes before, %d after",
		requests, methodBytes>>10, rssBefore, rssAfter, seriesBefore, seriesAfter, scrapeBefore, scrapeAfter)
	// The random methods are one label value, "other": at most a series per
	// route and status more.
	if seriesAfter > seriesBefore+2*len(paths) {
		t.Errorf("series grew from %d to %d with random methods", seriesBefore, seriesAfter)
	}
	if scrapeAfter > scrapeBefore+64<<10 {
		t.Errorf("/metrics grew from %d to %d bytes", scrapeBefore, scrapeAfter)
	}
	if rssAfter-rssBefore > 50 {
		t.Errorf("RSS grew by %.1f MiB (%.1f to %.1f) with random methods, want under 50", rssAfter-rssBefore, rssBefore, rssAfter)
	}
	logs := s.logText()
	for _, m := range samples {
		if strings.Contains(logs, m) {
			t.Fatal("a raw method reached the logs")
		}
	}
	if !strings.Contains(logs, `"method":"other"`) {
		t.Error(`no request logged with "method":"other"`)
	}
	s.stop(t)
}

// readyz calls /readyz with a client timeout, as a probe does.
func readyz(client *http.Client, base string) (status int, body string, elapsed time.Duration, err error) {
	start := time.Now()
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return 0, "", time.Since(start), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start), err
}

// waitReadiness polls /readyz until its status is want, for at most limit,
// and returns how long that took.
func waitReadiness(t *testing.T, s *service, want string, limit time.Duration) time.Duration {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	for {
		status, body, _, err := readyz(client, s.base)
		if err == nil && status == 200 && strings.Contains(body, `"status":"`+want+`"`) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("readiness not %q within %s: last %d %s %v", want, limit, status, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadinessWhileRedisHangs pauses the service's Redis (SIGSTOP): every
// one of 50 probes with a 1 s timeout is answered, and readiness turns
// degraded; resumed, it is ready again; killed, degraded again.
func TestReadinessWhileRedisHangs(t *testing.T) {
	redis := testenv.StartRedis(t, testenv.FreePort(t))
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_REDIS_URL="+redis.URL, "ORTHOTRIAGE_AUTH_DISABLED=true")
	waitReadiness(t, s, "ready", 10*time.Second)

	if err := redis.Pause(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: time.Second}
	var latencies []time.Duration
	degraded := 0
	for i := range 50 {
		status, body, elapsed, err := readyz(client, s.base)
		if err != nil {
			t.Fatalf("probe %d with Redis paused: %v (after %s)", i, err, elapsed)
		}
		if status != 200 {
			t.Errorf("probe %d with Redis paused = %d %s, want 200 (ready or degraded)", i, status, body)
		}
		if strings.Contains(body, `"status":"degraded"`) {
			degraded++
		}
		latencies = append(latencies, elapsed)
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(latencies)
	t.Logf("50 probes with Redis paused: p50 %s, p90 %s, max %s; %d reported degraded", latencies[len(latencies)/2].Round(time.Microsecond),
		latencies[len(latencies)*9/10].Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond), degraded)
	t.Logf("degraded %s after the probes, Redis still paused", waitReadiness(t, s, "degraded", 10*time.Second).Round(time.Millisecond))

	if err := redis.Resume(); err != nil {
		t.Fatal(err)
	}
	t.Logf("ready again %s after SIGCONT", waitReadiness(t, s, "ready", 15*time.Second).Round(time.Millisecond))
	redis.Stop()
	t.Logf("degraded %s after Redis was killed", waitReadiness(t, s, "degraded", 10*time.Second).Round(time.Millisecond))
	s.stop(t)
}
