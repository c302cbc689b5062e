package analysis

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// The statuses of a worklist item.
const (
	// WorkPending: the study is still in analysis.
	WorkPending = "pending"
	// WorkAIRead: the model read the study (its findings may be normal).
	WorkAIRead = "ai-read"
	// WorkNotRead: the image gate refused the study's radiograph; NotRead
	// says why.
	WorkNotRead = "not-read"
)

// WorkSaved is the Worklist.Mark of a study whose report the app saved.
const WorkSaved = "saved"

// WorkItem is one study on a FHIR server's worklist: what the
// radiologist's worklist shows of it, without naming its patient (the app
// reads the study's subject with the user's token).
type WorkItem struct {
	ImagingStudy string `json:"imagingStudy"` // "ImagingStudy/{id}" on the FHIR server
	StudyUID     string `json:"studyUid,omitempty"`
	Started      string `json:"started,omitempty"`  // the study's FHIR dateTime
	Modality     string `json:"modality,omitempty"` // e.g. DX: the analysed series' (else the study's first series')
	BodyPart     string `json:"bodyPart,omitempty"` // e.g. PELVIS: the analysed image's Body Part Examined (else the series' body site)
	Model        string `json:"model,omitempty"`    // id@version; "" while pending
	Task         string `json:"task"`               // the model task
	Priority     string `json:"priority,omitempty"` // the result's triage priority
	// Top is the most urgent notable finding (Result.Top, as its Flagged
	// class); nil when none is notable.
	Top    *WorkTop `json:"top,omitempty"`
	Review bool     `json:"review,omitempty"`
	// NotRead is the gate's reason when it refused the image.
	NotRead string `json:"notRead,omitempty"`
	Status  string `json:"status"` // WorkPending, WorkAIRead or WorkNotRead
	// Feedback is the last outcome the app recorded for the study's card:
	// "", "accepted" or "overridden"; Saved: the app saved its report.
	// Only Worklist.Mark sets them.
	Feedback string    `json:"feedback,omitempty"`
	Saved    bool      `json:"saved,omitempty"`
	Analyzed time.Time `json:"analyzed,omitzero"`
	// Updated is when the item last changed; the worklist stamps it when
	// zero and forgets the least recently updated items first.
	Updated time.Time `json:"updated"`
}

// WorkTop is the finding a worklist row shows.
type WorkTop struct {
	Display     string  `json:"display"`
	Region      string  `json:"region"`
	Probability float64 `json:"probability"`
}

// Worklist keeps, per tenant and FHIR server (NormalizeServer's form), the
// studies the service read or is reading, for the radiologist's worklist.
// store.RedisWorklist and its embedded twin store.MemoryWorklist are ones.
type Worklist interface {
	// Note records item, replacing the study's item (by ImagingStudy)
	// when item Supersedes it; the study keeps the Feedback and Saved it
	// was given.
	Note(ctx context.Context, tenant, fhirServer string, item WorkItem) error
	// Mark records what the app did with a study: WorkSaved sets Saved,
	// any other mark (an outcome) is its Feedback; a study not on the
	// list is left alone (no error).
	Mark(ctx context.Context, tenant, fhirServer, imagingStudy, mark string) error
	// List returns up to max items of the FHIR server (all when max is not
	// positive), in SortWorklist's order.
	List(ctx context.Context, tenant, fhirServer string, max int) ([]WorkItem, error)
}

// WorkItemOf is the worklist item of a study read: in is the study as the
// call or job resolved it, r its result bound to it.
func WorkItemOf(in Input, r Result) WorkItem {
	item := studyItem(in)
	if r.Study.ImagingStudyID != "" {
		item.ImagingStudy = "ImagingStudy/" + r.Study.ImagingStudyID
	}
	item.StudyUID = cmp.Or(r.Study.UID, item.StudyUID)
	item.Started = cmp.Or(r.Study.Started, item.Started)
	if len(r.Images) > 0 {
		if se, ok := seriesOf(in.Study, r.Images[0].SeriesUID); ok {
			item.Modality, item.BodyPart = seriesModality(in.Study, se), bodySite(se)
		}
		item.BodyPart = cmp.Or(r.Images[0].BodyPart, item.BodyPart)
	}
	if r.Model.ID != "" {
		item.Model = r.Model.ID + "@" + r.Model.Version
	}
	item.Task = cmp.Or(r.Model.Task, item.Task)
	item.Priority, item.Review, item.Analyzed = r.Priority, r.Review, r.Analyzed
	item.Status = WorkAIRead
	if f, ok := r.Top(); ok {
		c := f.Flagged()
		item.Top = &WorkTop{Display: c.Display, Region: f.Region, Probability: c.Probability}
	}
	if r.NotRead != nil {
		item.Status, item.NotRead = WorkNotRead, r.NotRead.Reason
	}
	return item
}

// PendingItem is the worklist item of a study still in analysis.
func PendingItem(in Input) WorkItem {
	item := studyItem(in)
	item.Status = WorkPending
	return item
}

// studyItem is what the ImagingStudy itself says of a study: its
// reference, UID and start, and its first series' modality and body site.
func studyItem(in Input) WorkItem {
	s := in.Study
	item := WorkItem{StudyUID: imaging.StudyInstanceUID(s), Started: deref(s.Started), Task: in.Task}
	if id := deref(s.Id); id != "" {
		item.ImagingStudy = "ImagingStudy/" + id
	}
	if len(s.Series) > 0 {
		item.Modality, item.BodyPart = seriesModality(s, s.Series[0]), bodySite(s.Series[0])
	} else if len(s.Modality) > 0 {
		item.Modality = deref(s.Modality[0].Code)
	}
	return item
}

func seriesOf(s models.ImagingStudy, uid string) (models.ImagingStudySeries, bool) {
	if uid == "" {
		return models.ImagingStudySeries{}, false
	}
	i := slices.IndexFunc(s.Series, func(se models.ImagingStudySeries) bool { return se.Uid == uid })
	if i < 0 {
		return models.ImagingStudySeries{}, false
	}
	return s.Series[i], true
}

// seriesModality is a series' modality code, else the study's first.
func seriesModality(s models.ImagingStudy, se models.ImagingStudySeries) string {
	if m := deref(se.Modality.Code); m != "" {
		return m
	}
	if len(s.Modality) > 0 {
		return deref(s.Modality[0].Code)
	}
	return ""
}

// bodySite is a series' body site as shown: its display, else its code.
func bodySite(se models.ImagingStudySeries) string {
	if se.BodySite == nil {
		return ""
	}
	return cmp.Or(deref(se.BodySite.Display), deref(se.BodySite.Code))
}

// Supersedes reports whether item, noted for a study already on the list
// as old, replaces it. A pending note replaces only a pending one: a hook
// whose budget ran out, or a new model version still reading, never hides
// a result the list has. A read of another task (another service's model
// read the same study) replaces a read only when it is at least as
// urgent, so that a STAT result is not sunk by a routine one.
func (item WorkItem) Supersedes(old WorkItem) bool {
	switch {
	case item.Status == WorkPending:
		return old.Status == WorkPending
	case old.Status == WorkPending || old.Task == item.Task:
		return true
	}
	return PriorityRank(item.Priority) >= PriorityRank(old.Priority)
}

// Carries reports whether item, replacing old, keeps old's Feedback and
// Saved: only for the same task and model, as they were about its result.
func (item WorkItem) Carries(old WorkItem) bool {
	return item.Task == old.Task && (item.Model == old.Model || item.Model == "")
}

// SortWorklist orders items as the worklist shows them: by priority (stat,
// asap, urgent, routine, none), then the oldest study first (studies with
// no readable start last), then by ImagingStudy.
func SortWorklist(items []WorkItem) {
	type row struct {
		item    WorkItem
		rank    int
		started time.Time
		known   bool // started is the study's
	}
	rows := make([]row, len(items))
	for i, it := range items {
		t, ok := FHIRTime(it.Started)
		rows[i] = row{item: it, rank: PriorityRank(it.Priority), started: t, known: ok}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if c := cmp.Compare(b.rank, a.rank); c != 0 {
			return c
		}
		if a.known != b.known {
			if a.known {
				return -1
			}
			return 1
		}
		if c := a.started.Compare(b.started); c != 0 {
			return c
		}
		return cmp.Compare(a.item.ImagingStudy, b.item.ImagingStudy)
	})
	for i, r := range rows {
		items[i] = r.item
	}
}
