package analysis_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/inference"
	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// worklistStudy is a hip study with two series: a CT scout first, then the
// DX radiograph the model reads.
func worklistStudy() analysis.Input {
	in := hipStudy("s1")
	in.Study.Started = ptr("2026-11-24T08:15:00Z")
	in.Study.Series = []fhirmodels.ImagingStudySeries{
		{Uid: "1.2.s1.1", Modality: fhirmodels.Coding{Code: ptr("CT")}, BodySite: &fhirmodels.Coding{Code: ptr("67734004"), Display: ptr("Pelvis")}},
		{Uid: "1.2.s1.2", Modality: fhirmodels.Coding{Code: ptr("DX")}, BodySite: &fhirmodels.Coding{Code: ptr("29836001")}},
	}
	return in
}

func TestWorkItemOf(t *testing.T) {
	analyzed := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	fracture := analysis.Finding{Region: "left-hip", Class: "fnf-displaced", Display: "Displaced fracture", Probability: 0.61, Reported: true,
		Priority: "stat", PriorityClass: "fnf",
		Probabilities: []analysis.ClassProbability{{Class: "normal", Probability: 0.08}, {Class: "fnf", Display: "Fracture of neck of femur", Probability: 0.92}}}
	normal := analysis.Finding{Region: "right-hip", Class: "normal", Display: "No fracture", Probability: 0.97, Reported: true, Normal: true}
	read := func(images []analysis.Image, findings ...analysis.Finding) analysis.Result {
		r := hipResult("s1", false)
		r.Study.Started, r.Images, r.Findings, r.Analyzed = "2026-11-24T08:15:00Z", images, findings, analyzed
		r.Model.Version = "0.2.0"
		return r
	}
	dx := []analysis.Image{{SeriesUID: "1.2.s1.2", BodyPart: "PELVIS"}}
	base := analysis.WorkItem{ImagingStudy: "ImagingStudy/s1", StudyUID: "1.2.s1", Started: "2026-11-24T08:15:00Z",
		Modality: "DX", BodyPart: "PELVIS", Model: "hip-000@0.2.0", Task: inference.TaskHip, Status: analysis.WorkAIRead, Analyzed: analyzed}
	tests := []struct {
		name string
		r    func() analysis.Result
		want func(analysis.WorkItem) analysis.WorkItem
	}{
		{"a fracture: the flagged class of the most urgent finding", func() analysis.Result {
			r := read(dx, normal, fracture)
			r.Priority, r.Review = "stat", true
			return r
		}, func(w analysis.WorkItem) analysis.WorkItem {
			w.Priority, w.Review = "stat", true
			w.Top = &analysis.WorkTop{Display: "Fracture of neck of femur", Region: "left-hip", Probability: 0.92}
			return w
		}},
		{"nothing notable: no top finding", func() analysis.Result { return read(dx, normal) },
			func(w analysis.WorkItem) analysis.WorkItem { return w }},
		{"refused by the gate", func() analysis.Result {
			r := read(dx)
			r.NotRead = &analysis.NotRead{Reason: analysis.ReasonExposure, Text: "mostly white"}
			return r
		}, func(w analysis.WorkItem) analysis.WorkItem {
			w.Status, w.NotRead = analysis.WorkNotRead, analysis.ReasonExposure
			return w
		}},
		{"no Body Part Examined: the analysed series' body site", func() analysis.Result {
			return read([]analysis.Image{{SeriesUID: "1.2.s1.2"}}, normal)
		}, func(w analysis.WorkItem) analysis.WorkItem {
			w.BodyPart = "29836001"
			return w
		}},
		{"a series the study does not list: the study's first series", func() analysis.Result {
			return read([]analysis.Image{{SeriesUID: "9.9"}}, normal)
		}, func(w analysis.WorkItem) analysis.WorkItem {
			w.Modality, w.BodyPart = "CT", "Pelvis"
			return w
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want(base), analysis.WorkItemOf(worklistStudy(), tc.r())); diff != "" {
				t.Errorf("WorkItemOf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPendingItem(t *testing.T) {
	tests := []struct {
		name string
		in   func() analysis.Input
		want analysis.WorkItem
	}{
		{"from the study's first series", worklistStudy, analysis.WorkItem{ImagingStudy: "ImagingStudy/s1", StudyUID: "1.2.s1",
			Started: "2026-11-24T08:15:00Z", Modality: "CT", BodyPart: "Pelvis", Task: inference.TaskHip, Status: analysis.WorkPending}},
		{"a study with no series: its modalities", func() analysis.Input {
			in := hipStudy("s2")
			in.Study.Modality = []fhirmodels.Coding{{Code: ptr("CR")}}
			return in
		}, analysis.WorkItem{ImagingStudy: "ImagingStudy/s2", StudyUID: "1.2.s2", Modality: "CR", Task: inference.TaskHip, Status: analysis.WorkPending}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, analysis.PendingItem(tc.in())); diff != "" {
				t.Errorf("PendingItem (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSupersedes(t *testing.T) {
	read := analysis.WorkItem{Task: "hip", Model: "hip-000@0.2.0", Status: analysis.WorkAIRead}
	pending := analysis.WorkItem{Task: "hip", Status: analysis.WorkPending}
	tests := []struct {
		name      string
		item, old analysis.WorkItem
		want      bool
	}{
		{"a read replaces a read", read, read, true},
		{"a read replaces pending", read, pending, true},
		{"pending replaces pending", pending, pending, true},
		{"pending never replaces a read", pending, read, false},
		{"pending never replaces a study not read", pending, analysis.WorkItem{Task: "hip", Status: analysis.WorkNotRead}, false},
		{"pending never replaces a read of another task", analysis.WorkItem{Task: "vertebral-fracture-acuity", Status: analysis.WorkPending}, read, false},
		{"pending of a new model never replaces the old one's read", analysis.WorkItem{Task: "hip", Model: "hip-000@0.3.0", Status: analysis.WorkPending}, read, false},
		{"a read of another task replaces a read as urgent", analysis.WorkItem{Task: "vertebral-fracture-acuity", Status: analysis.WorkAIRead, Priority: "stat"},
			analysis.WorkItem{Task: "hip", Status: analysis.WorkAIRead, Priority: "stat"}, true},
		{"a read of another task never sinks a more urgent one", analysis.WorkItem{Task: "vertebral-fracture-acuity", Status: analysis.WorkAIRead, Priority: "routine"},
			analysis.WorkItem{Task: "hip", Status: analysis.WorkAIRead, Priority: "stat"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.item.Supersedes(tc.old); got != tc.want {
				t.Errorf("Supersedes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSortWorklist(t *testing.T) {
	item := func(id, priority, started string) analysis.WorkItem {
		return analysis.WorkItem{ImagingStudy: "ImagingStudy/" + id, Priority: priority, Started: started}
	}
	items := []analysis.WorkItem{
		item("none", "", "2026-01-01"),
		item("routine", "routine", "2026-11-01"),
		item("urgent", "urgent", "2026-11-20"),
		item("stat-b", "stat", "2026-11-24T09:00:00Z"),
		item("stat-no-start", "stat", ""),
		item("stat-a", "stat", "2026-11-24T09:00:00Z"),
		item("stat-earlier-elsewhere", "stat", "2026-11-24T09:30:00+01:00"), // 08:30 UTC
		item("asap", "asap", "not a date"),
		item("stat-day", "stat", "2026-11-24"), // the day's start
	}
	analysis.SortWorklist(items)
	var got []string
	for _, it := range items {
		got = append(got, it.ImagingStudy[len("ImagingStudy/"):])
	}
	want := []string{"stat-day", "stat-earlier-elsewhere", "stat-a", "stat-b", "stat-no-start", "asap", "urgent", "routine", "none"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}
