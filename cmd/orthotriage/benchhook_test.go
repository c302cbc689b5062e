package main

import (
	"fmt"
	"io"
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

// BenchmarkHookLoad drives cached patient-view calls at a fixed rate over
// loopback against the real binary, once with the embedded (in-memory)
// store and once with Redis, and prints latency percentiles and the
// throughput reached. `make bench-hook` runs it; BENCH_RATE (default 200
// calls/s) and BENCH_SECONDS (default 10) set the load.
//
// The load is open-loop: call i is due at start + i/rate and its latency
// counts from then, so a slow answer delays no later call and stalls are
// not hidden (no coordinated omission). Calls carry a full prefetch, as an
// EHR sends, and a fresh signed JWT each (signed before the run); rate
// limits are raised for the run.
func BenchmarkHookLoad(b *testing.B) {
	rate := envInt("BENCH_RATE", 200)
	seconds := envInt("BENCH_SECONDS", 10)
	e := newResultsEnv(b)
	bin := buildBinary(b)
	common := []string{"ORTHOTRIAGE_AUTH_ISSUERS_FILE=" + e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_HTTP_RATE_PER_IP=0", "ORTHOTRIAGE_HTTP_RATE_PER_ISSUER=0"}
	modes := []struct {
		name string
		env  []string
	}{
		{"embedded store", nil},
		{"redis", []string{"ORTHOTRIAGE_REDIS_URL=" + testenv.Redis(b)}},
	}
	_, patient := testenv.FHIRDo(b, e.fhirBase, resultsToken, http.MethodGet, "Patient/"+e.patient, nil)
	_, study := testenv.FHIRDo(b, e.fhirBase, resultsToken, http.MethodGet, "ImagingStudy/"+e.studies[fnfCase], nil)
	var rows []string
	for _, m := range modes {
		s := startService(b, bin, append(slices.Clone(common), m.env...)...)
		url := s.base + "/cds-services/hip-radiograph-screening"
		body := `{"hook":"patient-view","hookInstance":"d3f1e2c4-0b7a-4c1e-9f3a-2b6d8e9a7c10","fhirServer":"` + e.fhirBase +
			`","fhirAuthorization":{"access_token":"` + resultsToken + `","token_type":"Bearer","expires_in":300,"scope":"patient/*.read","subject":"ehr"},` +
			`"context":{"userId":"Practitioner/1","patientId":"` + e.patient + `"},` +
			`"prefetch":{"patient":` + string(patient) + `,"studies":{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + string(study) + `}]}}}`
		// Warm the cache: the one analysis of the study.
		if status, out := call(b, http.MethodPost, url, body, e.sign(url)); status != 200 || !strings.Contains(out, `"indicator":"critical"`) {
			b.Fatalf("%s: warm-up call = %d %.300s", m.name, status, out)
		}
		n := rate * seconds
		tokens := make([]string, n)
		for i := range tokens {
			tokens[i] = e.sign(url)
		}
		lat, failed, elapsed := openLoop(url, body, tokens, rate)
		if got := metricValue(b, s, "orthotriage_analyses_total"); got != 1 {
			b.Errorf("%s: %v analyses, want only the warm-up's", m.name, got)
		}
		s.stop(b)
		slices.Sort(lat)
		pct := func(p float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		rows = append(rows, fmt.Sprintf("%-15s %8d %7d %10.1f %8.2f %8.2f %8.2f %8.2f",
			m.name, n, failed, float64(len(lat))/elapsed.Seconds(), pct(0.50), pct(0.90), pct(0.99), pct(1)))
		b.ReportMetric(pct(0.99), strings.ReplaceAll(m.name, " ", "-")+"-p99-ms")
	}
	fmt.Printf("\ncached patient-view over loopback, %d calls/s for %d s (open loop; latency from each call's due time)\n", rate, seconds)
	fmt.Printf("%-15s %8s %7s %10s %8s %8s %8s %8s\n", "store", "calls", "failed", "answers/s", "p50 ms", "p90 ms", "p99 ms", "max ms")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// openLoop sends one call per token at rate calls/s and returns the
// latencies of the 200 answers, the number of other outcomes and the time
// taken.
func openLoop(url, body string, tokens []string, rate int) (lat []time.Duration, failed int, elapsed time.Duration) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i, tok := range tokens {
		due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(due))
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			ok := err == nil && resp.StatusCode == 200
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			d := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				lat = append(lat, d)
			} else {
				failed++
			}
		})
	}
	wg.Wait()
	return lat, failed, time.Since(start)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
