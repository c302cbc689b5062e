package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/store"
)

func TestResultsContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testResultsContract(t, func(*testing.T) cds.ReportStore { return store.NewMemoryResults(100) })
	})
	t.Run("redis", func(t *testing.T) {
		testResultsContract(t, func(t *testing.T) cds.ReportStore { return store.NewRedisResults(newRedis(t)) })
	})
}

// sampleResult is a result with every kind of field a store must keep.
func sampleResult(priority string) analysis.Result {
	return analysis.Result{Schema: analysis.SchemaVersion, Study: analysis.Study{UID: "1.2.3"}, Priority: priority,
		Model:  analysis.Model{ID: "hip-000", Version: "0.1.0", Task: "hip"},
		Images: []analysis.Image{{SOPUID: "1.2.3.4", Rows: 2048, Columns: 2500}},
		Findings: []analysis.Finding{{Region: "left-hip", Laterality: "left", Class: "fnf", Probability: 0.97, Reported: true,
			Probabilities: []analysis.ClassProbability{{Class: "fnf", Probability: 0.97}}, Heatmap: []byte{0x89, 'P', 'N', 'G'}}},
		Notes:    []string{"synthetic model"},
		Analyzed: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		Timings:  analysis.Timings{Inference: 12.5}}
}

// testResultsContract is what a result (and report) store does, in memory
// or on Redis: a put result is got back as it was, until its ttl ends or
// it is put again; a result of another schema version is never served;
// Touch extends what is there and reports what expired or was never put
// as missing.
func testResultsContract(t *testing.T, newStore func(t *testing.T) cds.ReportStore) {
	const key = "orthotriage:result:v1:k"
	tests := []struct {
		name string
		run  func(t *testing.T, s cds.ReportStore)
	}{
		{"a key never put is a miss", func(t *testing.T, s cds.ReportStore) {
			if _, ok, err := s.Get(t.Context(), key); ok || err != nil {
				t.Errorf("empty store: ok=%v err=%v", ok, err)
			}
		}},
		{"what is put is got back whole", func(t *testing.T, s cds.ReportStore) {
			want := sampleResult("stat")
			if err := s.Put(t.Context(), key, want, time.Minute); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Get(t.Context(), key)
			if !ok || err != nil {
				t.Fatalf("read back: ok=%v err=%v", ok, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("read back (-put +got):\n%s", diff)
			}
			if _, ok, _ := s.Get(t.Context(), key+"-other"); ok {
				t.Error("another key found the result")
			}
		}},
		{"a result outlives not its ttl", func(t *testing.T, s cds.ReportStore) {
			if err := s.Put(t.Context(), key, sampleResult("stat"), 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if _, ok, _ := s.Get(t.Context(), key); ok {
				t.Error("result outlived its TTL")
			}
		}},
		{"put again replaces the result and its expiry", func(t *testing.T, s cds.ReportStore) {
			if err := s.Put(t.Context(), key, sampleResult("routine"), 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(t.Context(), key, sampleResult("stat"), time.Minute); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			got, ok, _ := s.Get(t.Context(), key)
			if !ok || got.Priority != "stat" {
				t.Errorf("after the second put: ok=%v priority %q, want the second result, kept for its own ttl", ok, got.Priority)
			}
		}},
		{"a result of another schema version is a miss", func(t *testing.T, s cds.ReportStore) {
			old := sampleResult("stat")
			old.Schema = analysis.SchemaVersion + 1
			if err := s.Put(t.Context(), key, old, time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := s.Get(t.Context(), key); ok || err != nil {
				t.Errorf("other schema: ok=%v err=%v, want a miss", ok, err)
			}
		}},
		// From the report store's contract: Touch finds and extends what
		// is there, and reports what expired or was never stored as
		// missing.
		{"touch extends a stored report", func(t *testing.T, s cds.ReportStore) {
			r := analysis.Result{Schema: analysis.SchemaVersion, Priority: "stat"}
			if there, err := s.Touch(t.Context(), "orthotriage:report:none", time.Minute); there || err != nil {
				t.Errorf("touch of a report never stored: there=%v err=%v", there, err)
			}
			if err := s.Put(t.Context(), "orthotriage:report:r1", r, 200*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if there, err := s.Touch(t.Context(), "orthotriage:report:r1", time.Minute); !there || err != nil {
				t.Fatalf("touch of a stored report: there=%v err=%v", there, err)
			}
			time.Sleep(300 * time.Millisecond) // past the first expiry: the touch extended it
			if _, ok, _ := s.Get(t.Context(), "orthotriage:report:r1"); !ok {
				t.Error("a touched report expired at its first expiry")
			}
		}},
		{"touch does not bring an expired report back", func(t *testing.T, s cds.ReportStore) {
			r := analysis.Result{Schema: analysis.SchemaVersion, Priority: "stat"}
			if err := s.Put(t.Context(), "orthotriage:report:r2", r, 50*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			if there, _ := s.Touch(t.Context(), "orthotriage:report:r2", time.Minute); there {
				t.Error("touch brought an expired report back")
			}
			if _, ok, _ := s.Get(t.Context(), "orthotriage:report:r2"); ok {
				t.Error("an expired report was served after a touch")
			}
		}},
		{"touch can shorten the expiry", func(t *testing.T, s cds.ReportStore) {
			if err := s.Put(t.Context(), key, sampleResult("stat"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if there, err := s.Touch(t.Context(), key, 50*time.Millisecond); !there || err != nil {
				t.Fatalf("touch: there=%v err=%v", there, err)
			}
			time.Sleep(100 * time.Millisecond)
			if _, ok, _ := s.Get(t.Context(), key); ok {
				t.Error("the result outlived the ttl its touch gave it")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore(t)) })
	}
}

// TestRedisResultsOfAnotherReplicaVersion: a value written by a replica of
// another schema version (an older one) is a miss, never a wrong result.
func TestRedisResultsOfAnotherReplicaVersion(t *testing.T) {
	rdb := newRedis(t)
	s := store.NewRedisResults(rdb)
	rdb.Set(t.Context(), "k", `{"schema":99,"result":{"schema":99,"priority":"stat"}}`, time.Minute)
	rdb.Set(t.Context(), "garbled", `{"schema":`, time.Minute)
	for _, key := range []string{"k", "garbled"} {
		if _, ok, err := s.Get(t.Context(), key); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want a miss", key, ok, err)
		}
	}
}

// TestMemoryResultsForgetTheLeastRecentlyUsed: the embedded store is
// bounded (Redis is bounded by its own maxmemory policy).
func TestMemoryResultsForgetTheLeastRecentlyUsed(t *testing.T) {
	s := store.NewMemoryResults(2)
	for i := range 3 {
		if i == 2 { // a is read, so b is the least recently used
			if _, ok, _ := s.Get(t.Context(), "a"); !ok {
				t.Fatal("a not kept")
			}
		}
		s.Put(t.Context(), string(rune('a'+i)), sampleResult(fmt.Sprint(i)), time.Hour)
	}
	for key, want := range map[string]bool{"a": true, "b": false, "c": true} {
		if _, ok, _ := s.Get(t.Context(), key); ok != want {
			t.Errorf("%s kept: %v, want %v", key, ok, want)
		}
	}
}

func TestStoreKey(t *testing.T) {
	key := analysis.StoreKey("https://ehr.example.org", "https://ehr.example.org/fhir", "1.2.3", "hip", "hip-000@0.1.0")
	if other := analysis.StoreKey("https://ehr.example.org", "https://ehr.example.org/fhir", "1.2.3", "hip", "hip-000@0.2.0"); other == key {
		t.Error("a new model version shares the old version's key")
	}
	if other := analysis.StoreKey("https://other-ehr.example.org", "https://ehr.example.org/fhir", "1.2.3", "hip", "hip-000@0.1.0"); other == key {
		t.Error("another tenant shares the key")
	}
	if same := analysis.StoreKey("https://ehr.example.org", "HTTPS://EHR.example.org/fhir/", "1.2.3", "hip", "hip-000@0.1.0"); same != key {
		t.Error("the FHIR server's URL is not normalised in the key")
	}
}
