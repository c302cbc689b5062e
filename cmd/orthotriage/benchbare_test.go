package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

// bareHookEnv names the file whose bytes the bare baseline server answers:
// set, the test binary serves them instead of running tests (TestMain).
const bareHookEnv = "ORTHOTRIAGE_BENCH_BARE_ANSWER"

// serveBareHook is the baseline: a bare gin handler answering every hook
// call with the service's own answer bytes, read from file, with nothing
// else on the path. It prints its address and serves until killed.
func serveBareHook(file string) {
	answer, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	length := strconv.Itoa(len(answer))
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/cds-services/:id", func(c *gin.Context) {
		io.Copy(io.Discard, c.Request.Body)
		c.Header("Content-Length", length) // as the service does: unchunked
		c.Data(http.StatusOK, "application/json", answer)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(ln.Addr().String())
	_ = http.Serve(ln, r)
}

// startBareHook runs serveBareHook in a child process (the test binary
// again), so that it runs beside the load generator as the service does,
// and returns its URL and process id.
func startBareHook(b *testing.B, answer []byte) (string, int) {
	b.Helper()
	file := b.TempDir() + "/answer.json"
	if err := os.WriteFile(file, answer, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), bareHookEnv+"="+file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := testenv.Start(b, cmd); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("bare server: %v", err)
	}
	return "http://" + strings.TrimSpace(addr), cmd.Process.Pid
}

// processCPU is the CPU time process pid has used so far, all its threads,
// user and system (/proc/PID/stat, in clock ticks: 100 a second, USER_HZ on
// Linux's usual builds). A Redis server's own CPU is not counted.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, utime and stime the 12th and 13th.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		b.Fatalf("/proc/%d/stat: %v", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// cpuPerAnswer runs one closed loop and measures the CPU time process pid
// spent per answer during it.
func cpuPerAnswer(b *testing.B, pid int, loop func() loadResult) (loadResult, time.Duration) {
	c0 := processCPU(b, pid)
	r := loop()
	if r.answers == 0 {
		return r, 0
	}
	return r, (processCPU(b, pid) - c0) / time.Duration(r.answers)
}

// loadResult is one closed-loop run.
type loadResult struct {
	answers  int
	rps      float64
	p50, p99 time.Duration
	failed   int64
}

// closedLoop keeps conns calls in flight for d, as wrk does (each
// connection sends its next call when the last is answered), and measures
// answers per second and latency. tokens, when set, give the calls their
// bearer tokens, one each: the run ends early when they run out.
func closedLoop(url string, body []byte, conns int, d time.Duration, tokens []string) loadResult {
	var next atomic.Int64
	token := func() (string, bool) {
		if tokens == nil {
			return "", true
		}
		i := next.Add(1) - 1
		if i >= int64(len(tokens)) {
			return "", false
		}
		return tokens[i], true
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(d)
	for range conns {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(stop) {
				tok, ok := token()
				if !ok {
					break
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	r := loadResult{answers: len(lat), rps: float64(len(lat)) / elapsed.Seconds(), failed: failed.Load()}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// BenchmarkHookVsBare measures cached patient-view calls against the
// bare-gin baseline answering the same bytes, closed loop at 8 and 32
// connections, for each of: auth off or on (ES384, a fresh jti each call),
// embedded store or Redis. Each hook run sits between two baseline runs at
// the same connection count, and the ratio is the hook's answers per second
// over their mean: both runs share the machine's state at the time. Beside
// it each server's CPU time per answer (all its threads, /proc) and the
// bytes the service allocates per answer (go_memstats_alloc_bytes_total):
// what an answer costs whatever else the machine is doing.
// `make bench-hook` runs it; BENCH_SECONDS (default 5) is each run's
// length, BENCH_TOKENS (default 3000 a second) how many tokens are signed
// for each authenticated run (it ends early when they run out),
// BENCH_SERVICE_ENV extra environment of the service alone
// (NAME=VALUE,...: GOGC=400, say), not of the baseline or the load.
func BenchmarkHookVsBare(b *testing.B) {
	seconds := envInt("BENCH_SECONDS", 5)
	run := time.Duration(seconds) * time.Second
	e := newResultsEnv(b)
	bin := buildBinary(b)
	redisURL := testenv.Redis(b)
	_, patient := testenv.FHIRDo(b, e.fhirBase, resultsToken, http.MethodGet, "Patient/"+e.patient, nil)
	_, study := testenv.FHIRDo(b, e.fhirBase, resultsToken, http.MethodGet, "ImagingStudy/"+e.studies[fnfCase], nil)
	body := []byte(`{"hook":"patient-view","hookInstance":"d3f1e2c4-0b7a-4c1e-9f3a-2b6d8e9a7c10","fhirServer":"` + e.fhirBase +
		`","fhirAuthorization":{"access_token":"` + resultsToken + `","token_type":"Bearer","expires_in":300,"scope":"patient/*.read","subject":"ehr"},` +
		`"context":{"userId":"Practitioner/1","patientId":"` + e.patient + `"},` +
		`"prefetch":{"patient":` + string(patient) + `,"studies":{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + string(study) + `}]}}}`)
	common := []string{"ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8", "ORTHOTRIAGE_HTTP_RATE_PER_IP=0", "ORTHOTRIAGE_HTTP_RATE_PER_ISSUER=0"}
	if extra := os.Getenv("BENCH_SERVICE_ENV"); extra != "" {
		common = append(common, strings.Split(extra, ",")...)
	}
	modes := []struct {
		name string
		auth bool
		env  []string
	}{
		{"auth off, embedded", false, []string{"ORTHOTRIAGE_AUTH_DISABLED=true"}},
		{"auth off, redis", false, []string{"ORTHOTRIAGE_AUTH_DISABLED=true", "ORTHOTRIAGE_REDIS_URL=" + redisURL}},
		{"ES384, embedded", true, []string{"ORTHOTRIAGE_AUTH_ISSUERS_FILE=" + e.issuers}},
		{"ES384, redis", true, []string{"ORTHOTRIAGE_AUTH_ISSUERS_FILE=" + e.issuers, "ORTHOTRIAGE_REDIS_URL=" + redisURL}},
	}
	var bare string
	var barePID, answerBytes int
	rows := []string{fmt.Sprintf("%-20s %5s %10s %10s %7s %8s %8s %8s %8s %10s %10s %10s", "mode", "conns", "answers/s", "bare/s", "ratio", "p50 ms", "p99 ms", "RSS MB", "heap MB", "CPU us/a", "bare us/a", "alloc KB/a")}
	for _, m := range modes {
		s := startService(b, bin, append(slices.Clone(common), m.env...)...)
		url := s.base + "/cds-services/hip-radiograph-screening"
		// With auth on, each call carries a token of its own (a fresh
		// jti), signed before the run so that signing is not measured.
		sign := func(n int) []string {
			if !m.auth {
				return nil
			}
			tokens := make([]string, n)
			for i := range tokens {
				tokens[i] = e.sign(url)
			}
			return tokens
		}
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if m.auth {
			req.Header.Set("Authorization", "Bearer "+sign(1)[0])
		}
		resp, err := http.DefaultClient.Do(req) // the one analysis; later calls are cached
		if err != nil {
			b.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(answer, []byte(`"indicator":"critical"`)) {
			b.Fatalf("%s: warm-up = %d %.300s", m.name, resp.StatusCode, answer)
		}
		if !json.Valid(answer) {
			b.Fatalf("%s: answer is not JSON", m.name)
		}
		if bare == "" {
			bare, barePID = startBareHook(b, answer)
			bare, answerBytes = bare+"/cds-services/hip-radiograph-screening", len(answer)
		}
		pid := s.cmd.Process.Pid
		for _, conns := range []int{8, 32} {
			// Each server's CPU time per answer during its runs: how much
			// work an answer costs, whatever the machine's load.
			before, bareCPU0 := cpuPerAnswer(b, barePID, func() loadResult { return closedLoop(bare, body, conns, run, nil) })
			tokens := sign(envInt("BENCH_TOKENS", 3000*seconds))
			alloc0 := metricValue(b, s, "go_memstats_alloc_bytes_total")
			hook, hookCPU := cpuPerAnswer(b, pid, func() loadResult { return closedLoop(url, body, conns, run, tokens) })
			allocKB := (metricValue(b, s, "go_memstats_alloc_bytes_total") - alloc0) / 1024 / float64(max(1, hook.answers))
			// The service's memory after its run: resident, and the heap
			// it holds from the system (GOGC trades one for CPU).
			rss, heap := metricValue(b, s, "process_resident_memory_bytes"), metricValue(b, s, "go_memstats_heap_sys_bytes")
			after, bareCPU1 := cpuPerAnswer(b, barePID, func() loadResult { return closedLoop(bare, body, conns, run, nil) })
			base := (before.rps + after.rps) / 2
			rows = append(rows, fmt.Sprintf("%-20s %5d %10.0f %10.0f %7.2f %8.2f %8.2f %8.0f %8.0f %10.1f %10.1f %10.1f", m.name, conns, hook.rps, base, hook.rps/base,
				float64(hook.p50.Microseconds())/1000, float64(hook.p99.Microseconds())/1000, rss/(1<<20), heap/(1<<20),
				float64(hookCPU.Nanoseconds())/1000, float64((bareCPU0+bareCPU1).Nanoseconds())/2000, allocKB))
			if hook.failed > 0 {
				b.Errorf("%s, %d connections: %d calls failed", m.name, conns, hook.failed)
			}
			b.ReportMetric(hook.rps/base, strings.NewReplacer(" ", "", ",", "-").Replace(m.name)+fmt.Sprintf("-c%d-ratio", conns))
		}
		if got := metricValue(b, s, "orthotriage_analyses_total"); got != 1 {
			b.Errorf("%s: %v analyses, want only the warm-up's", m.name, got)
		}
		s.stop(b)
	}
	env := ""
	if extra := os.Getenv("BENCH_SERVICE_ENV"); extra != "" {
		env = "; service environment " + extra
	}
	fmt.Printf("\ncached patient-view against a bare gin handler answering the same %d bytes (closed loop, %d s runs, loopback%s)\n", answerBytes, seconds, env)
	for _, r := range rows {
		fmt.Println(r)
	}
}

// BenchmarkColdHook measures the cold path: the imagingstudy-available hook
// for studies never analysed, one after the other (FHIR read, Endpoint,
// DICOMweb retrieval from Orthanc, decode, model, card), auth off and the
// embedded store, and prints the median and the slowest of BENCH_STUDIES
// (default 10) studies; BENCH_COMPRESSED=1 lets the PACS gzip the files.
func BenchmarkColdHook(b *testing.B) {
	n := envInt("BENCH_STUDIES", 10)
	e := newResultsEnv(b)
	ids := e.addStudies(b, "c", n+1)
	// BENCH_COMPRESSED=1 lets Orthanc gzip each instance (the old default),
	// for the comparison.
	compressed := os.Getenv("BENCH_COMPRESSED") == "1"
	s := startService(b, buildBinary(b), "ORTHOTRIAGE_AUTH_DISABLED=true", "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_HTTP_RATE_PER_IP=0", "ORTHOTRIAGE_HTTP_RATE_PER_ISSUER=0", fmt.Sprintf("ORTHOTRIAGE_IMAGING_COMPRESSED_TRANSFER=%v", compressed))
	url := s.base + "/cds-services/hip-radiograph-screening-imagingstudy-available"
	call := func(id string) time.Duration {
		body := hookBody("org.orthotriage.imagingstudy-available", e.fhirBase, resultsToken, `{"patientId":"`+e.patient+`","studies":["ImagingStudy/`+id+`"]}`)
		t0 := time.Now()
		status, out := callRaw(url, body)
		d := time.Since(t0)
		if status != http.StatusOK || !strings.Contains(out, `"indicator":"critical"`) {
			b.Fatalf("cold hook = %d %.300s", status, out)
		}
		return d
	}
	call(ids[n]) // the first call also warms the service's connections and ONNX Runtime
	var lat []time.Duration
	for _, id := range ids[:n] {
		lat = append(lat, call(id))
	}
	slices.Sort(lat)
	fmt.Printf("\ncold imagingstudy-available hook via Orthanc, %d studies (auth off, embedded store, gzip transfer %v): median %.1f ms, max %.1f ms\n",
		n, compressed, float64(lat[len(lat)/2].Microseconds())/1000, float64(lat[len(lat)-1].Microseconds())/1000)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
}

// callRaw posts a JSON body without a token.
func callRaw(url, body string) (int, string) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
