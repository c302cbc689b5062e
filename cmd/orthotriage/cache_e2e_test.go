package main

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/store"
)

// metricValue reads one unlabelled counter from a service's /metrics.
func metricValue(t testing.TB, s *service, name string) float64 {
	t.Helper()
	_, body := call(t, http.MethodGet, s.base+"/metrics", "")
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("metric %s not exported", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestOneInferencePerStudyAcrossReplicas: two service processes share one
// Redis; 50 concurrent hook calls on one uncached study, spread over both,
// all get the card and the study is analysed exactly once.
func TestOneInferencePerStudyAcrossReplicas(t *testing.T) {
	e := newResultsEnv(t)
	redisURL := testenv.Redis(t)
	bin := buildBinary(t)
	env := []string{"ORTHOTRIAGE_AUTH_ISSUERS_FILE=" + e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8", "ORTHOTRIAGE_REDIS_URL=" + redisURL,
		"ORTHOTRIAGE_RESULTS_LINK_SECRET=replicas-share-this-link-secret-0123456789"}
	replicas := []*service{startService(t, bin, env...), startService(t, bin, env...)}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for i := range 50 {
		wg.Go(func() {
			a := e.hook(t, replicas[i%2], fnfCase)
			if len(a.Cards) != 1 || a.Cards[0].Indicator != "critical" {
				mu.Lock()
				bad = append(bad, a.raw)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of 50 answers lack the critical card, e.g. %.300s", len(bad), bad[0])
	}
	var analyses, hits float64
	for _, s := range replicas {
		analyses += metricValue(t, s, "orthotriage_analyses_total")
		hits += metricValue(t, s, "orthotriage_result_cache_hits_total")
	}
	if analyses != 1 {
		t.Errorf("the study was analysed %v times across both replicas, want 1", analyses)
	}
	t.Logf("50 calls: %v analysis, %v answered straight from Redis, the rest waited for the one analysis", analyses, hits)

	// A card's report link opens on the other replica too.
	a := e.hook(t, replicas[0], fnfCase)
	var link string
	for _, l := range a.Cards[0].Links {
		if l.Type == "absolute" {
			link = strings.Replace(l.URL, replicas[0].base, replicas[1].base, 1)
		}
	}
	if status, html := call(t, http.MethodGet, link, ""); status != 200 || !strings.Contains(html, "<html") {
		t.Errorf("report link on the other replica = %d (%d bytes)", status, len(html))
	}
}

// TestRedisOutage: with Redis stopped, hooks keep answering (computing
// without the cache, or from this process's near copy) and readiness says
// degraded; when Redis is back, results are stored in it again.
func TestRedisOutage(t *testing.T) {
	e := newResultsEnv(t)
	port := testenv.FreePort(t)
	redisURL, stopRedis := testenv.StoppableRedis(t, port)
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_REDIS_URL="+redisURL)
	if a := e.hook(t, s, fnfCase); len(a.Cards) != 1 {
		t.Fatalf("with Redis: %s", a.raw)
	}
	stopRedis()
	for range 2 {
		if a := e.hook(t, s, fnfCase); len(a.Cards) != 1 || a.Cards[0].Indicator != "critical" {
			t.Fatalf("with Redis stopped, a study analysed before: %s\n%s", a.raw, s.logText())
		}
		if a := e.hook(t, s, normalCase); len(a.Cards) != 0 {
			t.Fatalf("with Redis stopped, a new study: %s\n%s", a.raw, s.logText())
		}
	}
	waitReadiness(t, s, "degraded", 10*time.Second) // checked in the background, every second
	if metricValue(t, s, "orthotriage_result_store_errors_total") < 1 {
		t.Error("store errors not counted")
	}
	testenv.RedisOnPort(t, port)        // back, empty
	time.Sleep(1100 * time.Millisecond) // the store's back-off after the last failure
	before := metricValue(t, s, "orthotriage_analyses_total")
	e.hook(t, s, oaCase) // computed and stored in Redis
	e.hook(t, s, oaCase) // from the cache
	if after := metricValue(t, s, "orthotriage_analyses_total"); after-before != 1 {
		t.Errorf("after Redis returned, two calls ran %v analyses, want 1 (the second from the cache)", after-before)
	}
	rdb, err := store.NewRedisClient(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if keys := rdb.Keys(t.Context(), "orthotriage:result:*").Val(); len(keys) != 1 {
		t.Errorf("Redis holds %d results after it returned, want the one computed since", len(keys))
	}
	waitReadiness(t, s, "ready", 10*time.Second)
}

// labelled reads one labelled counter line, e.g.
// orthotriage_precompute_jobs_total{event="done"}.
func labelled(t *testing.T, s *service, series string) float64 {
	t.Helper()
	_, body := call(t, http.MethodGet, s.base+"/metrics", "")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func waitMetric(t *testing.T, s *service, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for labelled(t, s, series) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed below %v:\n%s", series, want, s.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPrecomputeFromNotificationsAndAdmin: a FHIR Subscription notification
// and the admin call queue studies; workers analyse them through Redis
// Streams, and the hook then answers from the cache without analysing. A
// study that cannot be read is retried and dead-lettered.
func TestPrecomputeFromNotificationsAndAdmin(t *testing.T) {
	e := newResultsEnvWith(t, "") // jobs have no EHR token to lend: an open FHIR server
	const notify, admin = "notification-secret-0123456789", "admin-secret-0123456789abcdef"
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_REDIS_URL="+testenv.Redis(t), "ORTHOTRIAGE_PRECOMPUTE_FHIR_SERVER="+e.fhirBase,
		"ORTHOTRIAGE_PRECOMPUTE_NOTIFICATION_TOKEN="+notify, "ORTHOTRIAGE_PRECOMPUTE_ADMIN_TOKEN="+admin,
		"ORTHOTRIAGE_PRECOMPUTE_MAX_ATTEMPTS=2", "ORTHOTRIAGE_PRECOMPUTE_BACKOFF=100ms")

	url := s.base + "/fhir/subscription"
	notification := `{"resourceType":"ImagingStudy","id":"` + e.studies[fnfCase] + `"}`
	if status, _ := call(t, http.MethodPost, url, notification, "wrong"); status != 401 {
		t.Errorf("notification with a wrong token = %d, want 401", status)
	}
	if status, body := call(t, http.MethodPost, url, notification, notify); status != 200 {
		t.Fatalf("notification = %d %s", status, body)
	}
	waitMetric(t, s, `orthotriage_precompute_jobs_total{event="done"}`, 1)
	if got := metricValue(t, s, "orthotriage_analyses_total"); got != 1 {
		t.Errorf("%v analyses after the notification, want 1", got)
	}
	if a := e.hook(t, s, fnfCase); len(a.Cards) != 1 || a.Cards[0].Indicator != "critical" {
		t.Errorf("hook after precompute: %s", a.raw)
	}
	if got := metricValue(t, s, "orthotriage_analyses_total"); got != 1 {
		t.Errorf("the hook analysed again (%v analyses): the precomputed result was not used", got)
	}

	an := s.base + "/api/v1/studies/analyze"
	body := `{"fhirServer":"` + e.fhirBase + `","studies":["ImagingStudy/` + e.studies[normalCase] + `","ImagingStudy/no-such-study"]}`
	if status, _ := call(t, http.MethodPost, an, body); status != 401 {
		t.Errorf("analyze without a token = %d, want 401", status)
	}
	if status, out := call(t, http.MethodPost, an, `{"fhirServer":"https://elsewhere.example.org/fhir","studies":["ImagingStudy/1"]}`, admin); status != 403 {
		t.Errorf("analyze on an unregistered server = %d %s, want 403", status, out)
	}
	if status, out := call(t, http.MethodPost, an, `{"fhirServer":"`+e.fhirBase+`","studies":["Patient/1"]}`, admin); status != 400 || !strings.Contains(out, "studies[0]") {
		t.Errorf("analyze of a Patient = %d %s, want 400 naming studies[0]", status, out)
	}
	if status, out := call(t, http.MethodPost, an, body, admin); status != 202 || out != `{"queued":2}` {
		t.Fatalf("analyze = %d %s", status, out)
	}
	waitMetric(t, s, `orthotriage_precompute_jobs_total{event="done"}`, 2)
	waitMetric(t, s, `orthotriage_precompute_jobs_total{event="dead_lettered"}`, 1) // the missing study, after 2 tries
	if got := labelled(t, s, `orthotriage_precompute_jobs_total{event="retried"}`); got != 1 {
		t.Errorf("retried %v times, want 1 (max_attempts 2)", got)
	}
}
