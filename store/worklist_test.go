package store_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/store"
)

const (
	tenantA = "https://ehr.example.org"
	serverA = "https://ehr.example.org/fhir"
)

type newWorklist func(t *testing.T, ttl time.Duration, maxItems int) analysis.Worklist

func TestWorklistContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testWorklistContract(t, func(_ *testing.T, ttl time.Duration, n int) analysis.Worklist { return store.NewMemoryWorklist(ttl, n) })
	})
	t.Run("redis", func(t *testing.T) {
		testWorklistContract(t, func(t *testing.T, ttl time.Duration, n int) analysis.Worklist {
			return store.NewRedisWorklist(newRedis(t), ttl, n)
		})
	})
}

// at is a time on the test's day, minute m past ten.
func at(m int) time.Time { return time.Date(2026, 11, 24, 10, m, 0, 0, time.UTC) }

// readItem is a study the model read, updated at minute m.
func readItem(id, priority string, m int) analysis.WorkItem {
	return analysis.WorkItem{ImagingStudy: "ImagingStudy/" + id, StudyUID: "1.2." + id, Started: "2026-11-2" + fmt.Sprint(m%10) + "T08:00:00Z",
		Modality: "DX", BodyPart: "PELVIS", Model: "hip-000@0.2.0", Task: "hip", Priority: priority, Status: analysis.WorkAIRead,
		Top:      &analysis.WorkTop{Display: "Fracture of neck of femur", Region: "left-hip", Probability: 0.9312},
		Analyzed: at(m), Updated: at(m)}
}

// pendingItem is a study still in analysis, updated at minute m.
func pendingItem(id string, m int) analysis.WorkItem {
	return analysis.WorkItem{ImagingStudy: "ImagingStudy/" + id, Task: "hip", Status: analysis.WorkPending, Updated: at(m)}
}

// studies are the ImagingStudy references of items, in order.
func studies(items []analysis.WorkItem) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.ImagingStudy)
	}
	return out
}

// testWorklistContract is what a worklist does, in memory or on Redis.
func testWorklistContract(t *testing.T, newList newWorklist) {
	tests := []struct {
		name string
		run  func(t *testing.T, w analysis.Worklist)
	}{
		{"what is noted is listed back whole", func(t *testing.T, w analysis.Worklist) {
			want := readItem("1", "stat", 1)
			want.Review, want.NotRead = true, "exposure"
			note(t, w, tenantA, serverA, want)
			if diff := cmp.Diff([]analysis.WorkItem{want}, list(t, w, tenantA, serverA, 0)); diff != "" {
				t.Errorf("listed (-noted +got):\n%s", diff)
			}
		}},
		{"a note with no stamp is stamped", func(t *testing.T, w analysis.Worklist) {
			it := readItem("1", "", 0)
			it.Updated = time.Time{}
			before := time.Now()
			note(t, w, tenantA, serverA, it)
			got := list(t, w, tenantA, serverA, 0)
			if len(got) != 1 || got[0].Updated.Before(before.Add(-time.Second)) || got[0].Updated.Location() != time.UTC {
				t.Errorf("listed %+v, want one item stamped now in UTC", got)
			}
		}},
		{"a note replaces the study's item and keeps its feedback", func(t *testing.T, w analysis.Worklist) {
			note(t, w, tenantA, serverA, readItem("1", "routine", 1))
			if err := w.Mark(t.Context(), tenantA, serverA, "ImagingStudy/1", "overridden"); err != nil {
				t.Fatal(err)
			}
			again := readItem("1", "stat", 2)
			again.Feedback = "accepted" // a note never sets feedback
			note(t, w, tenantA, serverA, again)
			got := list(t, w, tenantA, serverA, 0)
			if len(got) != 1 || got[0].Priority != "stat" || got[0].Feedback != "overridden" {
				t.Errorf("listed %+v, want the second note with the feedback marked", got)
			}
		}},
		{"saved is marked apart from feedback and kept by notes", func(t *testing.T, w analysis.Worklist) {
			note(t, w, tenantA, serverA, readItem("1", "routine", 1))
			for _, m := range []string{"accepted", analysis.WorkSaved} {
				if err := w.Mark(t.Context(), tenantA, serverA, "ImagingStudy/1", m); err != nil {
					t.Fatal(err)
				}
			}
			again := readItem("1", "stat", 2)
			again.Saved = true // a note never sets it
			note(t, w, tenantA, serverA, readItem("2", "stat", 2))
			note(t, w, tenantA, serverA, again)
			got := list(t, w, tenantA, serverA, 0)
			if len(got) != 2 || got[0].ImagingStudy != "ImagingStudy/1" || !got[0].Saved || got[0].Feedback != "accepted" || got[1].Saved {
				t.Errorf("listed %+v, want study 1 saved with its feedback, study 2 not saved", got)
			}
		}},
		{"a new model's read drops the old one's feedback and saved mark", func(t *testing.T, w analysis.Worklist) {
			note(t, w, tenantA, serverA, readItem("1", "stat", 1))
			for _, m := range []string{"overridden", analysis.WorkSaved} {
				if err := w.Mark(t.Context(), tenantA, serverA, "ImagingStudy/1", m); err != nil {
					t.Fatal(err)
				}
			}
			next := readItem("1", "stat", 2)
			next.Model = "hip-000@9.9.9"
			note(t, w, tenantA, serverA, next)
			if got := list(t, w, tenantA, serverA, 0); len(got) != 1 || got[0].Model != "hip-000@9.9.9" || got[0].Feedback != "" || got[0].Saved {
				t.Errorf("listed %+v, want the new model's read without the old feedback or saved mark", got)
			}
		}},
		{"a note never sets feedback", func(t *testing.T, w analysis.Worklist) {
			it := readItem("1", "stat", 1)
			it.Feedback = "accepted"
			note(t, w, tenantA, serverA, it)
			if got := list(t, w, tenantA, serverA, 0); len(got) != 1 || got[0].Feedback != "" {
				t.Errorf("listed %+v, want no feedback", got)
			}
		}},
		{"pending never replaces a read of the same task", func(t *testing.T, w analysis.Worklist) {
			note(t, w, tenantA, serverA, readItem("1", "stat", 1))
			note(t, w, tenantA, serverA, pendingItem("1", 2))
			if got := list(t, w, tenantA, serverA, 0); len(got) != 1 || got[0].Status != analysis.WorkAIRead || !got[0].Updated.Equal(at(1)) {
				t.Errorf("listed %+v, want the read kept", got)
			}
			other := pendingItem("1", 3)
			other.Task = "vertebral-fracture-acuity"
			note(t, w, tenantA, serverA, other)
			if got := list(t, w, tenantA, serverA, 0); len(got) != 1 || got[0].Status != analysis.WorkAIRead {
				t.Errorf("listed %+v, want the read kept over another task's pending", got)
			}
			routine := readItem("1", "routine", 4)
			routine.Task = "vertebral-fracture-acuity"
			note(t, w, tenantA, serverA, routine)
			if got := list(t, w, tenantA, serverA, 0); len(got) != 1 || got[0].Priority != "stat" {
				t.Errorf("listed %+v, want the STAT read kept over another task's routine one", got)
			}
		}},
		{"a read replaces pending, pending a pending", func(t *testing.T, w analysis.Worklist) {
			note(t, w, tenantA, serverA, pendingItem("1", 1))
			note(t, w, tenantA, serverA, pendingItem("1", 2))
			if got := list(t, w, tenantA, serverA, 0); len(got) != 1 || !got[0].Updated.Equal(at(2)) {
				t.Errorf("listed %+v, want the second pending note", got)
			}
			note(t, w, tenantA, serverA, readItem("1", "urgent", 3))
			if got := list(t, w, tenantA, serverA, 0); len(got) != 1 || got[0].Status != analysis.WorkAIRead {
				t.Errorf("listed %+v, want the read", got)
			}
		}},
		{"mark of a study not on the list changes nothing", func(t *testing.T, w analysis.Worklist) {
			if err := w.Mark(t.Context(), tenantA, serverA, "ImagingStudy/none", "accepted"); err != nil {
				t.Errorf("mark on an empty list: %v", err)
			}
			note(t, w, tenantA, serverA, readItem("1", "stat", 1))
			if err := w.Mark(t.Context(), tenantA, serverA, "ImagingStudy/none", "accepted"); err != nil {
				t.Errorf("mark of an unknown study: %v", err)
			}
			if got := list(t, w, tenantA, serverA, 0); len(got) != 1 || got[0].Feedback != "" || !got[0].Updated.Equal(at(1)) {
				t.Errorf("listed %+v, want the one item untouched", got)
			}
		}},
		{"mark sets and clears feedback", func(t *testing.T, w analysis.Worklist) {
			note(t, w, tenantA, serverA, readItem("1", "stat", 1))
			for _, fb := range []string{"accepted", "overridden", ""} {
				if err := w.Mark(t.Context(), tenantA, serverA, "ImagingStudy/1", fb); err != nil {
					t.Fatal(err)
				}
				got := list(t, w, tenantA, serverA, 0)
				if len(got) != 1 || got[0].Feedback != fb || !got[0].Updated.After(at(1)) || got[0].Top == nil || got[0].Top.Probability != 0.9312 {
					t.Errorf("after mark %q: %+v", fb, got)
				}
			}
		}},
		{"listed by priority, then the oldest study first", func(t *testing.T, w analysis.Worklist) {
			for _, it := range []analysis.WorkItem{
				withStarted(readItem("routine", "routine", 1), "2026-11-20T08:00:00Z"),
				withStarted(readItem("none-old", "", 2), "2026-11-01"),
				withStarted(readItem("stat-new", "stat", 3), "2026-11-23T09:00:00+01:00"),
				withStarted(readItem("stat-old", "stat", 4), "2026-11-23T08:30:00Z"),
				withStarted(readItem("asap", "asap", 5), ""),
				withStarted(readItem("urgent", "urgent", 6), "2026-11-22"),
				pendingItem("pending", 7),
			} {
				note(t, w, tenantA, serverA, it)
			}
			want := []string{"ImagingStudy/stat-new", "ImagingStudy/stat-old", "ImagingStudy/asap", "ImagingStudy/urgent",
				"ImagingStudy/routine", "ImagingStudy/none-old", "ImagingStudy/pending"}
			if diff := cmp.Diff(want, studies(list(t, w, tenantA, serverA, 0))); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want[:3], studies(list(t, w, tenantA, serverA, 3))); diff != "" {
				t.Errorf("first three (-want +got):\n%s", diff)
			}
		}},
		{"tenants and FHIR servers are kept apart", func(t *testing.T, w analysis.Worklist) {
			note(t, w, tenantA, serverA, readItem("1", "stat", 1))
			note(t, w, "https://other-ehr.example.org", serverA, readItem("2", "stat", 1))
			note(t, w, tenantA, "https://ehr.example.org/other-fhir", readItem("3", "stat", 1))
			note(t, w, tenantA, "HTTPS://EHR.Example.org/fhir/", readItem("4", "stat", 1)) // serverA, written otherwise
			if err := w.Mark(t.Context(), "https://other-ehr.example.org", serverA, "ImagingStudy/1", "accepted"); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				tenant, server string
				want           []string
			}{
				{tenantA, serverA, []string{"ImagingStudy/1", "ImagingStudy/4"}},
				{"https://other-ehr.example.org", serverA, []string{"ImagingStudy/2"}},
				{tenantA, "https://ehr.example.org/other-fhir", []string{"ImagingStudy/3"}},
				{"", serverA, []string{}},
			} {
				got := list(t, w, tc.tenant, tc.server, 0)
				if diff := cmp.Diff(tc.want, studies(got)); diff != "" {
					t.Errorf("%s on %s (-want +got):\n%s", tc.tenant, tc.server, diff)
				}
				for _, it := range got {
					if it.Feedback != "" {
						t.Errorf("%s: another tenant's mark reached %s", tc.tenant, it.ImagingStudy)
					}
				}
			}
		}},
		{"a note without an ImagingStudy is refused", func(t *testing.T, w analysis.Worklist) {
			if err := w.Note(t.Context(), tenantA, serverA, analysis.WorkItem{Status: analysis.WorkPending}); err == nil {
				t.Error("no error")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newList(t, time.Hour, 100)) })
	}

	t.Run("at most maxItems, the least recently updated dropped", func(t *testing.T) {
		w := newList(t, time.Hour, 3)
		for i, id := range []string{"a", "b", "c"} {
			note(t, w, tenantA, serverA, readItem(id, "", i+1))
		}
		note(t, w, tenantA, serverA, readItem("a", "", 4)) // a is updated again: b is the oldest
		note(t, w, tenantA, serverA, readItem("d", "", 5))
		note(t, w, tenantA, serverA, readItem("e", "", 2)) // noted late, but older than c: dropped at once
		if diff := cmp.Diff([]string{"ImagingStudy/a", "ImagingStudy/c", "ImagingStudy/d"}, sortedStudies(list(t, w, tenantA, serverA, 0))); diff != "" {
			t.Errorf("kept (-want +got):\n%s", diff)
		}
		note(t, w, tenantA, serverA, readItem("f", "", 6))
		note(t, w, tenantA, serverA, readItem("g", "", 6))
		if diff := cmp.Diff([]string{"ImagingStudy/d", "ImagingStudy/f", "ImagingStudy/g"}, sortedStudies(list(t, w, tenantA, serverA, 0))); diff != "" {
			t.Errorf("kept (-want +got):\n%s", diff)
		}
		// Updated a tenth of a second after d, which goes.
		h := readItem("h", "", 5)
		h.Updated = h.Updated.Add(100 * time.Millisecond)
		note(t, w, tenantA, serverA, h)
		if diff := cmp.Diff([]string{"ImagingStudy/f", "ImagingStudy/g", "ImagingStudy/h"}, sortedStudies(list(t, w, tenantA, serverA, 0))); diff != "" {
			t.Errorf("kept (-want +got):\n%s", diff)
		}
	})

	t.Run("a worklist outlives not its ttl after its last note", func(t *testing.T) {
		w := newList(t, 300*time.Millisecond, 100)
		note(t, w, tenantA, serverA, readItem("1", "stat", 1))
		time.Sleep(150 * time.Millisecond)
		note(t, w, tenantA, serverA, pendingItem("1", 2)) // kept out, but the list's expiry is set again
		time.Sleep(200 * time.Millisecond)
		if got := list(t, w, tenantA, serverA, 0); len(got) != 1 {
			t.Fatalf("listed %d items 200 ms after a note with a 300 ms ttl, want 1", len(got))
		}
		time.Sleep(400 * time.Millisecond)
		if got := list(t, w, tenantA, serverA, 0); len(got) != 0 {
			t.Errorf("listed %+v past the ttl", got)
		}
	})

	t.Run("safe for concurrent use", func(t *testing.T) {
		w := newList(t, time.Hour, 30)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 30 {
					id := fmt.Sprint((g*7 + i) % 25)
					ctx := t.Context()
					if err := w.Note(ctx, tenantA, serverA, readItem(id, "stat", i)); err != nil {
						t.Error(err)
						return
					}
					if err := w.Note(ctx, tenantA, serverA, pendingItem(id, i)); err != nil {
						t.Error(err)
						return
					}
					if err := w.Mark(ctx, tenantA, serverA, "ImagingStudy/"+id, "accepted"); err != nil {
						t.Error(err)
						return
					}
					if _, err := w.List(ctx, tenantA, serverA, 5); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		got := list(t, w, tenantA, serverA, 0)
		if len(got) != 25 {
			t.Errorf("%d items after concurrent notes of 25 studies", len(got))
		}
		for _, it := range got {
			if it.Status != analysis.WorkAIRead || it.Feedback != "accepted" {
				t.Errorf("%s: status %s, feedback %q: want read and accepted (a pending note replaced a read, or a note lost a mark)", it.ImagingStudy, it.Status, it.Feedback)
			}
		}
	})
}

func withStarted(it analysis.WorkItem, started string) analysis.WorkItem {
	it.Started = started
	return it
}

func sortedStudies(items []analysis.WorkItem) []string {
	s := studies(items)
	slices.Sort(s)
	return s
}

func note(t *testing.T, w analysis.Worklist, tenant, server string, it analysis.WorkItem) {
	t.Helper()
	if err := w.Note(t.Context(), tenant, server, it); err != nil {
		t.Fatalf("note %s: %v", it.ImagingStudy, err)
	}
}

func list(t *testing.T, w analysis.Worklist, tenant, server string, max int) []analysis.WorkItem {
	t.Helper()
	items, err := w.List(t.Context(), tenant, server, max)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// redisWorklistKey is the hash a tenant's FHIR server's worklist is kept
// in, as the Redis layout promises.
func redisWorklistKey(tenant, server string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + analysis.NormalizeServer(server)))
	return "orthotriage:worklist:" + hex.EncodeToString(h[:])
}

// TestRedisWorklistLayout: one hash per tenant's FHIR server, a field per
// ImagingStudy holding the item's JSON, its expiry the ttl from each note.
func TestRedisWorklistLayout(t *testing.T) {
	rdb := newRedis(t)
	w := store.NewRedisWorklist(rdb, time.Hour, 10)
	note(t, w, tenantA, "HTTPS://EHR.example.org/fhir/", readItem("1", "stat", 1))
	key := redisWorklistKey(tenantA, serverA)
	fields, err := rdb.HKeys(t.Context(), key).Result()
	if err != nil || fmt.Sprint(fields) != "[ImagingStudy/1]" {
		t.Fatalf("hash %s fields %v (%v), want [ImagingStudy/1]", key, fields, err)
	}
	rdb.PExpire(t.Context(), key, time.Minute)
	note(t, w, tenantA, serverA, pendingItem("1", 2))
	if ttl := rdb.PTTL(t.Context(), key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("expiry %s after a note, want the hour of the ttl", ttl)
	}
	if err := w.Mark(t.Context(), tenantA, serverA, "ImagingStudy/1", "accepted"); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(t.Context(), key).Val(); ttl <= 59*time.Minute {
		t.Errorf("expiry %s after a mark, want it kept", ttl)
	}
}

// TestRedisWorklistSkipsUnreadableItems: a stored value that is not an
// item (another version's, a hand edit) is left out of the list, replaced
// by a note, left alone by a mark and dropped first when over the bound.
func TestRedisWorklistSkipsUnreadableItems(t *testing.T) {
	rdb := newRedis(t)
	w := store.NewRedisWorklist(rdb, time.Hour, 3)
	key := redisWorklistKey(tenantA, serverA)
	note(t, w, tenantA, serverA, readItem("1", "stat", 1))
	rdb.HSet(t.Context(), key, "ImagingStudy/bad", `{"imagingStudy":`, "ImagingStudy/list", `[1,2]`, "ImagingStudy/2", `"text"`)
	if got := studies(list(t, w, tenantA, serverA, 0)); fmt.Sprint(got) != "[ImagingStudy/1]" {
		t.Errorf("listed %v, want the readable item only", got)
	}
	if err := w.Mark(t.Context(), tenantA, serverA, "ImagingStudy/bad", "accepted"); err != nil {
		t.Errorf("mark of an unreadable item: %v", err)
	}
	if v := rdb.HGet(t.Context(), key, "ImagingStudy/bad").Val(); v != `{"imagingStudy":` {
		t.Errorf("mark changed an unreadable item to %s", v)
	}
	// Replaces "text"; over the bound, the first unreadable item goes.
	note(t, w, tenantA, serverA, readItem("2", "urgent", 2))
	if diff := cmp.Diff([]string{"ImagingStudy/1", "ImagingStudy/2"}, studies(list(t, w, tenantA, serverA, 0))); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	if fields := rdb.HKeys(t.Context(), key).Val(); !slices.Equal(slices.Sorted(slices.Values(fields)), []string{"ImagingStudy/1", "ImagingStudy/2", "ImagingStudy/list"}) {
		t.Errorf("hash holds %v, want the bound 3 with ImagingStudy/bad dropped", fields)
	}
}
