package cds

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/inference"
)

// Triage analyses the studies of a hook call, within the hook's budget;
// analysis.Triage (the use case) is one.
type Triage interface {
	// Reads reports whether a loaded model reads task.
	Reads(task string) bool
	// Call returns one outcome per study analysed, in order; it fails only
	// when ctx ends.
	Call(ctx context.Context, c analysis.Call) ([]analysis.Outcome, error)
}

var _ Triage = (*analysis.Triage)(nil)

// Reporter turns a result into FHIR resources (the fhir room).
type Reporter interface {
	// Report returns the result's resources in the order they are to be
	// created (referenced resources first) and the DiagnosticReport's id.
	Report(r analysis.Result) (Report, error)
	// HTML is the human-readable report, as put in the DiagnosticReport.
	HTML(r analysis.Result) ([]byte, error)
}

// Report is a result's FHIR resources.
type Report struct {
	ID        string // the DiagnosticReport's id
	Resources []json.RawMessage
	// Types are the resources' types, in the same order (nil: read from
	// each resource).
	Types []string
}

// CardOptions shape the cards of results.
type CardOptions struct {
	NormalCard    bool // info card when every finding is normal
	SystemActions bool // resources as systemActions instead of a suggestion
	ViewerURL     string
	Source        Source
	// PendingCard adds an info card naming the studies still in analysis
	// when the hook's budget ran out.
	PendingCard bool
}

// Override reasons offered on every card (CDS Hooks 2.0 overrideReasons).
var overrideReasons = []Coding{
	{System: localCodes + "/override-reason", Code: "disagree", Display: "Disagree with the AI finding"},
	{System: localCodes + "/override-reason", Code: "already-reviewed", Display: "Study already reviewed"},
	{System: localCodes + "/override-reason", Code: "poor-image-quality", Display: "Poor image quality"},
}

const localCodes = "https://orthotriage.github.io/fhir/CodeSystem"

// indicatorOf maps a triage priority to a card indicator: stat and asap are
// critical, urgent a warning, routine (or none) info.
func indicatorOf(priority string) string {
	switch priority {
	case "stat", "asap":
		return IndicatorCritical
	case "urgent":
		return IndicatorWarning
	}
	return IndicatorInfo
}

// issuedCard is what is remembered of a card so that feedback can be
// matched to it by uuid.
type issuedCard struct {
	Service   string
	Indicator string
	// Study is the card's ImagingStudy ("ImagingStudy/{id}"), which the
	// app's feedback must name.
	Study string
}

// cardUUIDs are the uuids of a result's card in one call (hookInstance) and
// of its save suggestion.
func cardUUIDs(hookInstance, reportID string) (card, save string) {
	card = uuid.NewSHA1(uuid.NameSpaceURL, []byte(hookInstance+"\x00"+reportID)).String()
	return card, saveUUIDOf(card)
}

// saveUUIDOf is the uuid of the save suggestion of the card with uuid card.
func saveUUIDOf(card string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(card+"\x00save")).String()
}

// card builds the card for one result with the given uuids (cardUUIDs), or
// returns false when the result calls for none (all normal and no normal
// card configured).
func (e *Engine) card(svc Service, cardUUID, saveUUID string, r analysis.Result, rep Report, base string) (Card, []Action, bool) {
	if !r.WorthACard(e.cards.NormalCard) {
		return Card{}, nil, false
	}
	top, notable := r.Top()
	indicator := indicatorOf(top.Priority) // top is the most urgent finding
	if r.Review && indicator == IndicatorInfo {
		indicator = IndicatorWarning
	}
	c := Card{
		UUID:            cardUUID,
		Summary:         summary(r, top, notable),
		Detail:          detail(r),
		Indicator:       indicator,
		Source:          e.cards.Source,
		OverrideReasons: overrideReasons,
	}
	c.Source.Topic = &Coding{System: localCodes + "/card-topic", Code: r.Model.Task + "-triage", Display: svc.Title}
	var actions []Action
	for i, res := range rep.Resources {
		typ := ""
		if len(rep.Types) == len(rep.Resources) {
			typ = rep.Types[i]
		} else {
			typ = resourceType(res)
		}
		actions = append(actions, Action{Type: "create", Description: "Create " + typ + " (AI preliminary result)", Resource: res})
	}
	if !e.cards.SystemActions && len(actions) > 0 {
		c.Suggestions = []Suggestion{{Label: "Save AI preliminary report", UUID: saveUUID, Actions: actions}}
		c.SelectionBehavior = "any"
	}
	if u := e.ReportURL(base, rep.ID); u != "" {
		c.Links = append(c.Links, Link{Label: "AI triage report (HTML)", Type: "absolute", URL: u})
	}
	if e.cards.ViewerURL != "" {
		c.Links = append(c.Links, Link{Label: "View images and heat maps", URL: e.cards.ViewerURL, Type: "smart",
			AppContext: appContext(svc, cardUUID, r, rep)})
	}
	if e.cards.SystemActions {
		return c, actions, true
	}
	return c, nil, true
}

// AppContext is what a card's SMART link tells the app (its appContext, a
// JSON string the EHR hands over at launch): the study, the report, the
// model, and the card and service the app's feedback is about.
type AppContext struct {
	ImagingStudy     string `json:"imagingStudy"`
	StudyInstanceUID string `json:"studyInstanceUid,omitempty"`
	DiagnosticReport string `json:"diagnosticReport"`
	Model            string `json:"model"`
	Card             string `json:"card"`
	Service          string `json:"service"`
}

func appContext(svc Service, cardUUID string, r analysis.Result, rep Report) string {
	b, _ := json.Marshal(AppContext{
		ImagingStudy: "ImagingStudy/" + r.Study.ImagingStudyID, StudyInstanceUID: r.Study.UID,
		DiagnosticReport: "DiagnosticReport/" + rep.ID, Model: r.Model.ID + "@" + r.Model.Version,
		Card: cardUUID, Service: svc.ID,
	})
	return string(b)
}

// maxSummary is the longest summary sent: CDS Hooks wants under 140.
const maxSummary = 139

// summary says the most urgent finding first, e.g. "Possible fracture of
// neck of femur, right hip (97%): STAT read suggested".
func summary(r analysis.Result, top analysis.Finding, notable bool) string {
	var s string
	switch {
	case r.Model.Task == inference.TaskVertebral && len(r.Localised) == 0:
		s = "AI triage: no vertebral body could be localised on the lateral spine radiograph, no acuity estimate"
	case r.Model.Task == inference.TaskVertebral && notable:
		// e.g. "L1 fracture likely acute (91%): urgent read suggested"
		s = fmt.Sprintf("%s fracture likely %s (%s)", top.Region, top.Class, analysis.Percent(top.Probability))
		if top.Priority != "" {
			s += ": " + top.Priority + " read suggested"
		}
		if n := countNotable(r) - 1; n > 0 {
			s += fmt.Sprintf(" (+%d more)", n)
		}
	case !notable:
		s = "AI triage: no abnormality found on " + studyNoun(r)
	default:
		fl := top.Flagged()
		s = fmt.Sprintf("Possible %s, %s (%s)", lowerFirst(fl.Display), site(top), analysis.Percent(fl.Probability))
		if top.Priority != "" {
			s += ": " + strings.ToUpper(top.Priority) + " read suggested"
		}
		if n := countNotable(r) - 1; n > 0 {
			s += fmt.Sprintf(" (+%d more)", n)
		}
	}
	if r.Review {
		s += "; low confidence, needs review"
	}
	if r.Model.Synthetic() {
		s = "[synthetic model] " + s
	}
	return truncate(s, maxSummary)
}

func studyNoun(r analysis.Result) string {
	switch {
	case r.Model.Task == inference.TaskHip:
		return "the hips"
	case r.Model.Task == inference.TaskVertebral && len(r.Localised) > 0:
		return "the vertebrae " + r.Localised[0] + "-" + r.Localised[len(r.Localised)-1] + " (no fracture)"
	}
	return "the study"
}

func site(f analysis.Finding) string {
	if f.Laterality != "" && strings.HasSuffix(f.Region, "-hip") {
		return f.Laterality + " hip"
	}
	if f.Laterality != "" {
		return f.Laterality + " " + f.Region
	}
	return f.Region
}

func countNotable(r analysis.Result) int {
	n := 0
	for _, f := range r.Findings {
		if f.Notable() {
			n++
		}
	}
	return n
}

func lowerFirst(s string) string {
	if s == "" || strings.ToUpper(s[:1]) != s[:1] || (len(s) > 1 && strings.ToUpper(s[1:2]) == s[1:2]) {
		return s // empty, already lower, or an acronym
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// truncate cuts s to at most n runes, ending with an ellipsis when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// detail is the card's markdown: a table of findings, the model and its
// limits.
func detail(r analysis.Result) string {
	var b strings.Builder
	if r.Model.Synthetic() {
		fmt.Fprintf(&b, "**%s.** This model was trained on synthetic radiographs only.\n\n", strings.ToUpper(r.Model.Warning[:1])+r.Model.Warning[1:])
	}
	if r.Model.Task == inference.TaskVertebral {
		vertebralDetail(&b, r)
	} else {
		hipTable(&b, r)
	}
	fmt.Fprintf(&b, "\nModel: %s %s.", mdEscape(r.Model.ID), mdEscape(r.Model.Version))
	if r.Study.UID != "" {
		fmt.Fprintf(&b, " Study: %s.", mdEscape(r.Study.UID))
	}
	b.WriteString("\n\nLimitations: a second reader for triage, not a diagnosis; results are preliminary until a radiologist reports the study.")
	switch r.Model.Task {
	case inference.TaskHip:
		if r.Hips != nil { // found by the model's localiser
			b.WriteString(" One AP pelvis image per study is read; each hip is cropped where the model's localiser found it, and a hip it placed wrongly, or one cut off by collimation, can mislead the model.")
		} else {
			b.WriteString(" One AP pelvis image per study is read and each hip is cropped at a fixed position, so unusual positioning or collimation can mislead the model.")
		}
	case inference.TaskVertebral:
		b.WriteString(" One lateral image per study is read; acuity is an estimate where MRI is not available soon, and MRI (bone marrow oedema) remains the reference.")
	}
	return b.String()
}

// hipTable is the hip findings' table.
func hipTable(b *strings.Builder, r analysis.Result) {
	b.WriteString("| Site | AI finding | Probability | Suggested priority |\n|---|---|---|---|\n")
	for _, f := range r.Findings {
		fl := f.Flagged()
		finding := f.Display
		if fl.Class != f.Class {
			finding += fmt.Sprintf(" (%s %s)", lowerFirst(fl.Display), analysis.Percent(fl.Probability))
		}
		if f.LowConfidence || !f.Reported {
			finding += " - low confidence"
		}
		prio := f.Priority
		if prio == "" {
			prio = "-"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", mdEscape(site(f)), mdEscape(finding), analysis.Percent(f.Probability), prio)
	}
}

// vertebralDetail is the fractured vertebrae's table, each nomogram's
// breakdown and the notes.
func vertebralDetail(b *strings.Builder, r analysis.Result) {
	if len(r.Localised) > 0 {
		fmt.Fprintf(b, "Vertebrae localised: %s.\n\n", strings.Join(r.Localised, ", "))
	}
	if len(r.Findings) > 0 {
		b.WriteString("| Vertebra | AI acuity | P(acute) | From | P(fracture) | Suggested priority |\n|---|---|---|---|---|---|\n")
		for _, f := range r.Findings {
			pa, method, frac := f.Probability, "", "-"
			if f.Class == "chronic" {
				pa = 1 - f.Probability
			}
			if a := f.Acuity; a != nil {
				method, frac = a.Method(), analysis.Percent(a.Fracture)
			}
			acuity := f.Class
			if f.LowConfidence {
				acuity += " - low confidence"
			}
			prio := f.Priority
			if prio == "" {
				prio = "-"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", mdEscape(f.Region), acuity, analysis.Percent(pa), method, frac, prio)
		}
		for _, f := range r.Findings {
			a := f.Acuity
			if a == nil || a.Nomogram == nil {
				continue
			}
			fmt.Fprintf(b, "\n**Nomogram, %s** (points; more points, more likely acute):\n\n| Variable | Value | Points |\n|---|---|---|\n", mdEscape(f.Region))
			for _, p := range a.Nomogram.Points {
				v := fmt.Sprintf("%g", p.Value)
				switch p.Name {
				case "dlr":
					v = analysis.Percent(p.Value) + " acute"
				case "female":
					v = map[bool]string{true: "female", false: "male"}[p.Value == 1]
				case "trauma":
					v = map[bool]string{true: "yes", false: "no"}[p.Value == 1]
				}
				if p.Unit != "" {
					v += " " + p.Unit
				}
				if p.Clipped {
					v += " (outside the training range: counted at its end)"
				}
				fmt.Fprintf(b, "| %s | %s | %.0f |\n", mdEscape(p.Label), mdEscape(v), p.Points)
			}
			fmt.Fprintf(b, "| **Total** | | **%.0f** -> P(acute) %s |\n", a.Nomogram.TotalPoints, analysis.Percent(a.Nomogram.Probability))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(b, "\n%s\n", mdEscape(n))
	}
}

// mdEscape keeps text from breaking a markdown table.
func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ", "*", "\\*", "_", "\\_", "[", "\\[", "]", "\\]").Replace(s)
}

// pendingCard says that n studies are still being analysed.
func (e *Engine) pendingCard(svc Service, hookInstance string, n int) Card {
	what := "1 radiograph study"
	if n > 1 {
		what = fmt.Sprintf("%d radiograph studies", n)
	}
	c := Card{
		UUID:      uuid.NewSHA1(uuid.NameSpaceURL, []byte(hookInstance+"\x00pending")).String(),
		Summary:   truncate("AI triage in progress for "+what+": results appear when the chart is next opened", maxSummary),
		Indicator: IndicatorInfo,
		Source:    e.cards.Source,
	}
	c.Source.Topic = &Coding{System: localCodes + "/card-topic", Code: svc.Task + "-triage", Display: svc.Title}
	return c
}

// notReadCard says on the custom hook that a study's image was not read
// and why: the gate refused it, no finding was made.
func (e *Engine) notReadCard(svc Service, hookInstance string, r analysis.Result) Card {
	s := "AI triage: radiograph not read: " + r.NotRead.Text
	if r.Model.Synthetic() {
		s = "[synthetic model] " + s
	}
	c := Card{
		UUID:      uuid.NewSHA1(uuid.NameSpaceURL, []byte(hookInstance+"\x00not-read\x00"+r.BoundKey())).String(),
		Summary:   truncate(s, maxSummary),
		Detail:    fmt.Sprintf("The image was not read (reason `%s`): %s. No finding is given; the study needs an ordinary read.", r.NotRead.Reason, mdEscape(r.NotRead.Text)),
		Indicator: IndicatorInfo,
		Source:    e.cards.Source,
	}
	c.Source.Topic = &Coding{System: localCodes + "/card-topic", Code: svc.Task + "-triage", Display: svc.Title}
	return c
}
