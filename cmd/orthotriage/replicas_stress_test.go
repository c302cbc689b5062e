package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/phantom"
)

// busyProxy stands between the replicas and a real Redis: it holds a share
// of what the clients send back for a while, as a healthy Redis does when
// busy (a command answered after the client's 200 ms store timeout); frozen,
// it holds everything, as a Redis paused by SIGSTOP does.
type busyProxy struct {
	ln           net.Listener
	target       string
	share        float64
	delay        time.Duration
	frozen       atomic.Bool
	held, chunks atomic.Int64
	mu           sync.Mutex
	conns        []net.Conn
}

func newBusyProxy(t *testing.T, target string, share float64, delay time.Duration) *busyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &busyProxy{ln: ln, target: target, share: share, delay: delay}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *busyProxy) addr() string { return p.ln.Addr().String() }

func (p *busyProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go func() {
			io.Copy(client, server)
			client.Close()
		}()
		go func() {
			defer server.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					p.chunks.Add(1)
					if rand.Float64() < p.share {
						p.held.Add(1)
						time.Sleep(p.delay)
					}
					for p.frozen.Load() {
						time.Sleep(10 * time.Millisecond)
					}
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// studyAvailableURL finds the hip service's imagingstudy-available entry in
// a replica's discovery document.
func (e *resultsEnv) studyAvailableURL(t *testing.T, s *service) string {
	t.Helper()
	status, body := call(t, http.MethodGet, s.base+"/cds-services", "", e.sign(s.base+"/cds-services"))
	if status != http.StatusOK {
		t.Fatalf("discovery = %d %s", status, body)
	}
	var d struct{ Services []struct{ ID, Hook string } }
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	for _, svc := range d.Services {
		if svc.Hook == "org.orthotriage.imagingstudy-available" && strings.HasPrefix(svc.ID, "hip-") {
			return s.base + "/cds-services/" + svc.ID
		}
	}
	t.Fatalf("no hip imagingstudy-available service in %s", body)
	return ""
}

// addStudies stores n copies of one phantom radiograph under new UIDs in
// Orthanc, each as its own ImagingStudy of the env's patient: n cold
// studies.
func (e *resultsEnv) addStudies(t testing.TB, tag string, n int) []string {
	t.Helper()
	orthanc := strings.TrimSuffix(e.dicomweb, "/dicom-web")
	endpoint := e.createEndpoint(t)
	base := phantom.Pelvis(3, fnfCase).Image
	var ids []string
	for i := range n {
		im := base
		suffix := fmt.Sprintf(".9%s%d", tag, i)
		im.StudyInstanceUID += suffix
		im.SeriesInstanceUID += suffix
		im.SOPInstanceUID += suffix
		uploadDICOM(t, orthanc, im)
		ids = append(ids, fhirCreate(t, e.fhirBase, resultsToken, fmt.Sprintf(`{"resourceType":"ImagingStudy","status":"available",`+
			`"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:%s"}],"subject":{"reference":"Patient/%s"},`+
			`"started":"2026-11-20T08:00:00Z","endpoint":[{"reference":"Endpoint/%s"}],`+
			`"series":[{"uid":"%s","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"%s"},`+
			`"bodySite":{"system":"http://snomed.info/sct","code":"12921003","display":"Pelvis"},`+
			`"instance":[{"uid":"%s","sopClass":{"system":"urn:ietf:rfc:3986","code":"urn:oid:%s"}}]}]}`,
			im.StudyInstanceUID, e.patient, endpoint, im.SeriesInstanceUID, im.Modality, im.SOPInstanceUID, im.SOPClassUID)))
	}
	return ids
}

// studyHook calls the imagingstudy-available hook for one ImagingStudy.
func (e *resultsEnv) studyHook(t *testing.T, url, id string) hookAnswer {
	t.Helper()
	return e.callHook(t, url, hookBody("org.orthotriage.imagingstudy-available", e.fhirBase, resultsToken,
		`{"patientId":"`+e.patient+`","studies":["ImagingStudy/`+id+`"]}`))
}

func sumMetric(t *testing.T, replicas []*service, name string) float64 {
	t.Helper()
	var n float64
	for _, s := range replicas {
		n += metricValue(t, s, name)
	}
	return n
}

// TestOneInferencePerStudyUnderBursts: two replicas share a healthy but
// busy Redis (a tenth of the commands answered only after the replicas'
// 200 ms store timeout); in each of 8 rounds, 20 concurrent hook calls
// spread over both ask for 5 cold studies. Every study is analysed exactly
// once, and the study lock is never bypassed. Then Redis stops answering
// altogether (paused): only that outage relaxes the lock, and the metric
// says so.
func TestOneInferencePerStudyUnderBursts(t *testing.T) {
	const rounds, perRound, calls = 8, 5, 20
	e := newResultsEnv(t)
	ids := e.addStudies(t, "b", rounds*perRound+1)
	redisURL := testenv.Redis(t)
	proxy := newBusyProxy(t, strings.TrimSuffix(strings.TrimPrefix(redisURL, "redis://"), "/0"), 0.1, 250*time.Millisecond)
	bin := buildBinary(t)
	env := []string{"ORTHOTRIAGE_AUTH_ISSUERS_FILE=" + e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_REDIS_URL=redis://" + proxy.addr(), "ORTHOTRIAGE_RESULTS_LINK_SECRET=replicas-share-this-link-secret-0123456789"}
	replicas := []*service{startService(t, bin, env...), startService(t, bin, env...)}
	urls := []string{e.studyAvailableURL(t, replicas[0]), e.studyAvailableURL(t, replicas[1])}

	var table []string
	for round := range rounds {
		studies := ids[round*perRound : (round+1)*perRound]
		before := sumMetric(t, replicas, "orthotriage_analyses_total")
		var wg sync.WaitGroup
		var cards atomic.Int32
		for i := range calls {
			wg.Go(func() {
				if a := e.studyHook(t, urls[i%2], studies[i%perRound]); len(a.Cards) > 0 && a.Cards[0].Indicator == "critical" {
					cards.Add(1)
				}
			})
		}
		wg.Wait()
		// Every study's card, now from the cache (waiting out any analysis
		// that went past the hook's budget).
		for i, id := range studies {
			deadline := time.Now().Add(60 * time.Second)
			for a := e.studyHook(t, urls[(i+1)%2], id); len(a.Cards) == 0; a = e.studyHook(t, urls[(i+1)%2], id) {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: study %s has no card after 60 s:\n%s", round, id, a.raw)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		analysed := sumMetric(t, replicas, "orthotriage_analyses_total") - before
		table = append(table, fmt.Sprintf("round %d: %d studies, %d calls, %d answered with the card at once, %v analyses", round+1, perRound, calls, cards.Load(), analysed))
		if analysed != perRound {
			t.Errorf("round %d: %v analyses of %d cold studies, want exactly one each", round+1, analysed, perRound)
		}
	}
	if n := sumMetric(t, replicas, "orthotriage_study_lock_bypassed_total"); n != 0 {
		t.Errorf("the study lock was bypassed %v times with Redis busy but up", n)
	}
	t.Logf("busy Redis: %d of %d commands held back 250 ms\n%s\nstore errors (retried): %v, outages: %v",
		proxy.held.Load(), proxy.chunks.Load(), strings.Join(table, "\n"),
		sumMetric(t, replicas, "orthotriage_result_store_errors_total"), sumMetric(t, replicas, "orthotriage_result_store_outages_total"))

	// Redis paused: after the outage threshold the study is analysed
	// without the lock, and the counters say so.
	proxy.frozen.Store(true)
	last := ids[len(ids)-1]
	deadline := time.Now().Add(60 * time.Second)
	for a := e.studyHook(t, urls[0], last); len(a.Cards) == 0; a = e.studyHook(t, urls[0], last) {
		if time.Now().After(deadline) {
			t.Fatalf("with Redis paused, no card after 60 s:\n%s", a.raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	bypassed, outages := metricValue(t, replicas[0], "orthotriage_study_lock_bypassed_total"), metricValue(t, replicas[0], "orthotriage_result_store_outages_total")
	if bypassed < 1 || outages < 1 {
		t.Errorf("with Redis paused: lock bypassed %v, outages %v; want both counted", bypassed, outages)
	}
	t.Logf("Redis paused: the study answered without the lock (bypassed %v, outages %v)", bypassed, outages)
	proxy.frozen.Store(false)
}

// TestReportLinksOpenOnEveryReplica: a card's report link opens on the
// other replica; while Redis is down a card carries no link (none that
// would not open); after Redis restarts empty, links open again on the
// other replica (the report is stored anew, not assumed kept).
func TestReportLinksOpenOnEveryReplica(t *testing.T) {
	e := newResultsEnv(t)
	port := testenv.FreePort(t)
	redisURL, stopRedis := testenv.StoppableRedis(t, port)
	bin := buildBinary(t)
	env := []string{"ORTHOTRIAGE_AUTH_ISSUERS_FILE=" + e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_REDIS_URL=" + redisURL, "ORTHOTRIAGE_RESULTS_LINK_SECRET=replicas-share-this-link-secret-0123456789"}
	replicas := []*service{startService(t, bin, env...), startService(t, bin, env...)}
	url := e.studyAvailableURL(t, replicas[0])
	study := e.studies[fnfCase]
	// opensElsewhere follows every report link of an answer on the other
	// replica; it returns how many there were.
	opensElsewhere := func(stage string, a hookAnswer) int {
		t.Helper()
		n := 0
		for _, c := range a.Cards {
			for _, l := range c.Links {
				if l.Type != "absolute" || !strings.Contains(l.URL, "/reports/") {
					continue
				}
				n++
				other := strings.Replace(l.URL, replicas[0].base, replicas[1].base, 1)
				if status, body := call(t, http.MethodGet, other, ""); status != http.StatusOK {
					t.Errorf("%s: the card's report link gives %d on the other replica: %.200s", stage, status, body)
				}
			}
		}
		return n
	}
	answer := func(stage string) hookAnswer {
		t.Helper()
		a := e.studyHook(t, url, study)
		if len(a.Cards) != 1 || a.Cards[0].Indicator != "critical" {
			t.Fatalf("%s: %s", stage, a.raw)
		}
		return a
	}
	if n := opensElsewhere("Redis up", answer("Redis up")); n != 1 {
		t.Errorf("Redis up: %d report links, want 1", n)
	}
	stopRedis()
	down := 0
	for range 3 {
		down += opensElsewhere("Redis down", answer("Redis down"))
	}
	testenv.RedisOnPort(t, port) // back, empty
	var after int
	deadline := time.Now().Add(20 * time.Second)
	for after == 0 && time.Now().Before(deadline) { // until the replica uses Redis again
		after = opensElsewhere("Redis back empty", answer("Redis back empty"))
		time.Sleep(200 * time.Millisecond)
	}
	if after != 1 {
		t.Errorf("after Redis restarted empty: no report link within 20 s")
	}
	t.Logf("report links: 1 with Redis up, %d in 3 answers with Redis down, %d after it restarted empty; each opened on the other replica", down, after)
}
