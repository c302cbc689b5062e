package fhir

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/fhir/codes"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/internal/textx"
)

// Model tasks the builders know (the manifests' tasks).
const (
	TaskHip       = inference.TaskHip
	TaskVertebral = inference.TaskVertebral
)

// ReportOptions tunes BuildReport.
type ReportOptions struct {
	Manufacturer string // Device.manufacturer; default "orthotriage"
	// PresentedForm is how the DiagnosticReport carries the HTML report:
	// PresentedNone (the default: the card links it), PresentedLink
	// (presentedForm.url from ReportLink), PresentedInline (base64 data)
	// or PresentedBinary (a Binary resource beside it, which
	// presentedForm.url references); the last two when the report is at
	// most MaxInlineBytes, 64 KiB when 0 (a larger report is left out).
	PresentedForm  string
	MaxInlineBytes int
	// ReportLink gives the report's URL for PresentedLink; nil, or "" for
	// a report, leaves the form out.
	ReportLink func(reportID string) string
}

// How a DiagnosticReport carries the HTML report (ReportOptions).
const (
	PresentedNone   = "none"
	PresentedLink   = "link"
	PresentedInline = "inline"
	PresentedBinary = "binary"
)

// Report is the FHIR R4 resources for one analysis.Result: the model as a
// Device, one Observation per finding (hip or vertebra), the
// DiagnosticReport that gathers them, a Task suggesting a prioritised read
// when the result calls for one, and the Provenance of it all. Every id is
// derived from the Result, so writing a Report twice (PUT by id) updates
// rather than duplicates.
type Report struct {
	Device           models.Device
	Observations     []models.Observation // one per finding, in Result order
	DiagnosticReport models.DiagnosticReport
	// Binary is the HTML report that the DiagnosticReport's presentedForm
	// references (ReportOptions.PresentedBinary); nil otherwise.
	Binary     *models.Binary
	Task       *models.Task // nil when Result.Priority == ""
	Provenance models.Provenance
}

// builder carries what every resource of one Report shares.
type builder struct {
	r            analysis.Result
	o            ReportOptions
	deviceID     string
	reportID     string
	issued       string
	imagingStudy models.Reference
	notes        []models.Annotation // the synthetic-data warning, if any
}

// BuildReport maps r to FHIR R4 resources. It checks r first and returns an
// orthotriage precondition error listing every missing or bad field
// (study.patient, findings[0].probability, ...).
func BuildReport(r analysis.Result, o ReportOptions) (*Report, error) {
	if fields := checkResult(r); len(fields) > 0 {
		return nil, &orthotriage.Error{Code: orthotriage.EPrecondition, Message: "analysis result cannot be written as FHIR", Fields: fields}
	}
	if o.Manufacturer == "" {
		o.Manufacturer = "orthotriage"
	}
	b := &builder{
		r:            r,
		o:            o,
		deviceID:     deviceID(r.Model),
		reportID:     ReportID(r),
		issued:       instant(r.Analyzed),
		imagingStudy: imagingStudyRef(r.Study),
	}
	if r.Model.Synthetic() && r.Model.Warning != "" {
		b.notes = []models.Annotation{{Text: r.Model.Warning}}
	}
	rep := &Report{Device: b.device()}
	for _, f := range r.Findings {
		rep.Observations = append(rep.Observations, b.observation(f))
	}
	dr, bin, err := b.diagnosticReport()
	if err != nil {
		return nil, err
	}
	rep.DiagnosticReport, rep.Binary = dr, bin
	if r.Priority != "" {
		t := b.task()
		rep.Task = &t
	}
	rep.Provenance = b.provenance(rep)
	return rep, nil
}

// ReportID returns the id of r's DiagnosticReport, the one cards link to.
// It depends on the tenant, the FHIR server, the patient, the study, the
// model id and version, and the vertebral bodies a caller gave if any
// (Result.GivenBodies: a corrected reading is another report, never
// written over the localiser's or under it) only: the same pixels answered
// for another patient (a merged or misfiled study) get other ids, never
// the first patient's.
func ReportID(r analysis.Result) string {
	return resourceID(r, "DiagnosticReport")
}

// resourceID derives a FHIR id (40 hex characters, a valid id) from the
// result's identity and the resource kind.
func resourceID(r analysis.Result, kind string, extra ...string) string {
	parts := []string{kind, r.Tenant, r.FHIRServer, r.Study.Patient, r.Study.Key(), r.Model.ID, r.Model.Version}
	if r.GivenBodies != "" {
		// Only then, so that every other reading keeps the ids it had.
		parts = append(parts, "given-bodies:"+r.GivenBodies)
	}
	return hashID(append(parts, extra...)...)
}

// deviceID depends on the model only: every report of one model release
// shares its Device.
func deviceID(m analysis.Model) string {
	return hashID("Device", m.ID, m.Version)
}

func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed, so ("ab","c") and ("a","bc") differ.
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// ResourceTypes are the types of Resources, in its order.
func (rep *Report) ResourceTypes() []string {
	types := []string{"Device"}
	for range rep.Observations {
		types = append(types, "Observation")
	}
	if rep.Binary != nil {
		types = append(types, "Binary")
	}
	types = append(types, "DiagnosticReport")
	if rep.Task != nil {
		types = append(types, "Task")
	}
	return append(types, "Provenance")
}

// Resources returns the report's resources as JSON, in the order Device,
// Observations, Binary (if any), DiagnosticReport, Task (if any),
// Provenance: each after the resources it references.
func (rep *Report) Resources() ([]json.RawMessage, error) {
	all := []any{rep.Device}
	for _, o := range rep.Observations {
		all = append(all, o)
	}
	if rep.Binary != nil {
		all = append(all, *rep.Binary)
	}
	all = append(all, rep.DiagnosticReport)
	if rep.Task != nil {
		all = append(all, *rep.Task)
	}
	all = append(all, rep.Provenance)
	out := make([]json.RawMessage, 0, len(all))
	for _, res := range all {
		b, err := json.Marshal(res)
		if err != nil {
			return nil, fmt.Errorf("encode %T: %w", res, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Transaction returns a transaction Bundle that writes every resource with
// PUT Type/id (update as create), so sending it again replaces rather than
// duplicates. base is the FHIR server's base URL, used for the fullUrls.
func (rep *Report) Transaction(base string) ([]byte, error) {
	resources, err := rep.Resources()
	if err != nil {
		return nil, err
	}
	return TransactionOf(base, resources)
}

// TransactionOf is Transaction for resources already encoded (as
// Resources returns them).
func TransactionOf(base string, resources []json.RawMessage) ([]byte, error) {
	base = strings.TrimRight(base, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "transaction base %q is not an absolute http(s) URL", base)
	}
	bundle := models.Bundle{Type: models.BundleTypeTransaction}
	for i, raw := range resources {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.ResourceType == "" || head.ID == "" {
			return nil, fmt.Errorf("transaction entry %d without resourceType or id", i)
		}
		path := head.ResourceType + "/" + head.ID
		bundle.Entry = append(bundle.Entry, models.BundleEntry{
			FullUrl:  ptr(base + "/" + path),
			Resource: raw,
			Request:  &models.BundleEntryRequest{Method: models.HTTPVerbPUT, Url: path},
		})
	}
	return json.Marshal(bundle)
}

// device is the model release.
func (b *builder) device() models.Device {
	m := b.r.Model
	notes := []models.Annotation{}
	if m.IntendedUse != "" {
		notes = append(notes, models.Annotation{Text: "Intended use: " + m.IntendedUse})
	}
	if m.Architecture != "" {
		notes = append(notes, models.Annotation{Text: "Architecture: " + m.Architecture})
	}
	if m.TrainingData != "" {
		notes = append(notes, models.Annotation{Text: "Training data: " + m.TrainingData})
	}
	notes = append(notes, b.notes...)
	d := models.Device{
		Id:           ptr(b.deviceID),
		Meta:         aiMeta(),
		Identifier:   []models.Identifier{{System: ptr(codes.SystemModel), Value: ptr(m.ID + "@" + m.Version)}},
		Status:       ptr(models.FHIRDeviceStatusActive),
		Manufacturer: ptr(b.o.Manufacturer),
		DeviceName:   []models.DeviceDeviceName{{Name: m.ID, Type: models.DeviceNameTypeModelName}},
		Version:      []models.DeviceVersion{{Value: m.Version}},
		Note:         notes,
	}
	if len(d.Note) == 0 {
		d.Note = nil
	}
	return d
}

// observation is one finding.
func (b *builder) observation(f analysis.Finding) models.Observation {
	code := codes.ObservationHipFinding
	if b.r.Model.Task == TaskVertebral {
		code = codes.ObservationVertebralFinding
	}
	o := models.Observation{
		Id:          ptr(resourceID(b.r, "Observation", f.Region)),
		Meta:        aiMeta(),
		PartOf:      []models.Reference{b.imagingStudy},
		Status:      models.ObservationStatusPreliminary,
		Category:    []models.CodeableConcept{concept(codes.CategoryImaging, "")},
		Code:        concept(code, ""),
		Subject:     &models.Reference{Reference: ptr(b.r.Study.Patient)},
		Issued:      ptr(b.issued),
		Device:      &models.Reference{Reference: ptr("Device/" + b.deviceID)},
		DerivedFrom: []models.Reference{b.imagingStudy},
		ValueCodeableConcept: &models.CodeableConcept{
			Coding: []models.Coding{findingCoding(f.Code)},
			Text:   nonEmpty(f.Display),
		},
		BodySite: b.bodySite(f),
	}
	if b.r.Study.Started != "" {
		o.EffectiveDateTime = ptr(b.r.Study.Started)
	}
	if interp, ok := interpretation(f); ok {
		o.Interpretation = []models.CodeableConcept{concept(interp, "")}
	}
	o.Component = b.components(f)
	if f.LowConfidence {
		o.Note = append(o.Note, models.Annotation{Text: "Low confidence - needs review"})
	}
	if !f.Reported {
		o.Note = append(o.Note, models.Annotation{Text: "Not reported: the top class is below its reporting threshold"})
	}
	if fl := f.Flagged(); fl.Class != f.Class {
		o.Note = append(o.Note, models.Annotation{Text: fmt.Sprintf("Possible %s (%s) set the %s priority", lowerFirst(className(fl)), percent(fl.Probability), f.Priority)})
	}
	o.Note = append(o.Note, b.notes...)
	return o
}

// interpretation is AA when the finding asks for a stat or asap read, A
// when it asks for another priority (even when its top class is the normal
// one: the class that set the priority is another), N for the normal
// class, A for another reported class, and none for a top class below its
// reporting threshold, which the model does not assert.
func interpretation(f analysis.Finding) (string, bool) {
	switch {
	case f.Priority == "stat" || f.Priority == "asap":
		return codes.InterpretationCritical, true
	case f.Priority != "":
		return codes.InterpretationAbnormal, true
	case !f.Reported:
		return "", false
	case f.Normal:
		return codes.InterpretationNormal, true
	default:
		return codes.InterpretationAbnormal, true
	}
}

// bodySite is the hip joint (laterality in text and in a component) or the
// vertebra's bone structure.
func (b *builder) bodySite(f analysis.Finding) *models.CodeableConcept {
	if b.r.Model.Task == TaskVertebral {
		c, _ := vertebraCode(f.Region) // checked by checkResult
		return &models.CodeableConcept{Coding: []models.Coding{coding(c)}, Text: ptr(f.Region + " vertebra")}
	}
	return &models.CodeableConcept{
		Coding: []models.Coding{coding(tableCode(codes.BodyHipJoint))},
		Text:   ptr(titleCase(f.Laterality) + " hip joint"),
	}
}

// components are the reported class's probability, the laterality or the
// fracture acuity, then every class's probability in manifest order.
//
// Probabilities are fractions 0..1 rounded to 4 decimals with the UCUM
// unit "1" (dimensionless), the unit the model reports in; a percentage
// would only rescale and lose a digit.
func (b *builder) components(f analysis.Finding) []models.ObservationComponent {
	cs := []models.ObservationComponent{{
		Code:          concept(codes.ComponentProbability, ""),
		ValueQuantity: probability(f.Probability),
	}}
	switch {
	case b.r.Model.Task == TaskHip:
		side := codes.LateralityRight
		if f.Laterality == "left" {
			side = codes.LateralityLeft
		}
		cs = append(cs, models.ObservationComponent{Code: concept(codes.ComponentLaterality, ""), ValueCodeableConcept: ptr(concept(side, ""))})
	case f.Class == "acute" || f.Class == "chronic":
		acuity := codes.AcuityAcute
		if f.Class == "chronic" {
			acuity = codes.AcuityChronic
		}
		cs = append(cs, models.ObservationComponent{Code: concept(codes.ComponentFractureAcuity, ""), ValueCodeableConcept: ptr(concept(acuity, ""))})
	}
	for _, p := range f.Probabilities {
		cs = append(cs, models.ObservationComponent{
			Code: models.CodeableConcept{
				Coding: []models.Coding{{System: ptr(codes.SystemClassProbability), Code: ptr(p.Class), Display: nonEmpty(p.Display)}},
				Text:   probabilityText(p),
			},
			ValueQuantity: probability(p.Probability),
		})
	}
	return cs
}

// probabilityText names a class-probability component whose coding has no
// display; one with a display needs no text (the code system says it is a
// probability), which keeps a two-hip answer within 16 KB.
func probabilityText(p analysis.ClassProbability) *string {
	if p.Display != "" {
		return nil
	}
	return ptr("Probability of " + p.Class)
}

func probability(p float64) *models.Quantity {
	v := json.Number(strconv.FormatFloat(math.Round(p*1e4)/1e4, 'f', -1, 64))
	return &models.Quantity{Value: &v, Unit: ptr("1"), System: ptr(codes.SystemUCUM), Code: ptr("1")}
}

// presentedForm is the HTML report as the options say: none, a link,
// inline or as a Binary (returned too) when small enough.
func (b *builder) presentedForm() ([]models.Attachment, *models.Binary, error) {
	switch b.o.PresentedForm {
	case PresentedLink:
		if b.o.ReportLink == nil {
			return nil, nil, nil
		}
		u := b.o.ReportLink(b.reportID)
		if u == "" {
			return nil, nil, nil
		}
		return []models.Attachment{{ContentType: ptr(reportContentType), Language: ptr("en"), Url: ptr(u),
			Title: ptr(reportTitle(b.r)), Creation: ptr(b.issued)}}, nil, nil
	case PresentedInline, PresentedBinary:
		html, err := ReportHTML(b.r)
		if err != nil {
			return nil, nil, err
		}
		limit := b.o.MaxInlineBytes
		if limit <= 0 {
			limit = 64 << 10
		}
		if len(html) > limit {
			return nil, nil, nil
		}
		sum := sha1.Sum(html) // Attachment.hash is defined as SHA-1
		data := base64.StdEncoding.EncodeToString(html)
		form := models.Attachment{
			ContentType: ptr(reportContentType),
			Language:    ptr("en"),
			Size:        ptr(len(html)),
			Hash:        ptr(base64.StdEncoding.EncodeToString(sum[:])),
			Title:       ptr(reportTitle(b.r)),
			Creation:    ptr(b.issued),
		}
		if b.o.PresentedForm == PresentedInline {
			form.Data = &data
			return []models.Attachment{form}, nil, nil
		}
		// The Binary is read with the patient's access rules
		// (securityContext) and referenced from the report by its id.
		bin := &models.Binary{
			Id:              ptr(resourceID(b.r, "Binary")),
			Meta:            aiMeta(),
			ContentType:     reportContentType,
			SecurityContext: &models.Reference{Reference: ptr(b.r.Study.Patient)},
			Data:            &data,
		}
		form.Url = ptr("Binary/" + *bin.Id)
		return []models.Attachment{form}, bin, nil
	}
	return nil, nil, nil
}

// reportContentType is the HTML report's media type.
const reportContentType = "text/html; charset=utf-8"

// diagnosticReport gathers the Observations under the exam code, with a
// plain-language conclusion and the HTML summary as presentedForm (and the
// Binary that holds it, with PresentedBinary).
func (b *builder) diagnosticReport() (models.DiagnosticReport, *models.Binary, error) {
	r := b.r
	exam := codes.ExamHip
	if r.Model.Task == TaskVertebral {
		exam = codes.ExamSpine
	}
	form, bin, err := b.presentedForm()
	if err != nil {
		return models.DiagnosticReport{}, nil, err
	}
	conclusion := Conclusion(r)
	dr := models.DiagnosticReport{
		Id:             ptr(b.reportID),
		Meta:           aiMeta(),
		Status:         models.DiagnosticReportStatusPreliminary,
		Category:       []models.CodeableConcept{concept(codes.CategoryRAD, "")},
		Code:           concept(exam, ""),
		Subject:        &models.Reference{Reference: ptr(r.Study.Patient)},
		Issued:         ptr(b.issued),
		ImagingStudy:   []models.Reference{b.imagingStudy},
		Conclusion:     ptr(conclusion),
		ConclusionCode: conclusionCodes(r),
		PresentedForm:  form,
		// The conclusion is a core element, so its narrative is "generated".
		Text: narrative(models.NarrativeStatusGenerated, conclusion),
	}
	if r.Study.Started != "" {
		dr.EffectiveDateTime = ptr(r.Study.Started)
	}
	for _, sr := range r.Study.BasedOn {
		dr.BasedOn = append(dr.BasedOn, models.Reference{Reference: ptr(sr)})
	}
	for _, o := range r.Findings {
		dr.Result = append(dr.Result, models.Reference{Reference: ptr("Observation/" + resourceID(r, "Observation", o.Region))})
	}
	return dr, bin, nil
}

// conclusionCodes are the codes of the reported abnormal findings, each
// code and wording once (the code system's display in the coding, the
// model's wording as text); the normal code when every finding is reported
// normal and none set a priority; else none.
func conclusionCodes(r analysis.Result) []models.CodeableConcept {
	var out []models.CodeableConcept
	seen := map[string]bool{}
	add := func(f analysis.Finding) {
		if k := f.Code.System + "|" + f.Code.Code + "|" + f.Display; !seen[k] {
			seen[k] = true
			out = append(out, models.CodeableConcept{Coding: []models.Coding{findingCoding(f.Code)}, Text: nonEmpty(f.Display)})
		}
	}
	for _, f := range r.Findings {
		if f.Reported && !f.Normal {
			add(f)
		}
	}
	if len(out) > 0 || len(r.Findings) == 0 {
		return out
	}
	for _, f := range r.Findings {
		if !f.Reported || !f.Normal || f.Notable() {
			return nil
		}
	}
	add(r.Findings[0])
	return out
}

// task suggests the prioritised read. Its intent is "proposal": R4's
// TaskIntent value set (required binding) defines proposal as a suggestion
// by someone or something without authorization to act, which is what an
// AI triage is; "order" would claim an authorization it does not have.
func (b *builder) task() models.Task {
	r := b.r
	focus := b.imagingStudy
	if len(r.Study.BasedOn) > 0 {
		focus = models.Reference{Reference: ptr(r.Study.BasedOn[0])}
	}
	prio, _ := requestPriority(r.Priority) // checked by checkResult
	t := models.Task{
		Id:              ptr(resourceID(r, "Task")),
		Meta:            aiMeta(),
		Status:          models.TaskStatusRequested,
		Intent:          "proposal",
		Priority:        &prio,
		Code:            ptr(concept(codes.TaskReadStudy, "")),
		Description:     ptr(taskDescription(r)),
		Focus:           &focus,
		For:             &models.Reference{Reference: ptr(r.Study.Patient)},
		AuthoredOn:      ptr(b.issued),
		Requester:       &models.Reference{Reference: ptr("Device/" + b.deviceID)},
		ReasonReference: &models.Reference{Reference: ptr("DiagnosticReport/" + b.reportID)},
		Note:            b.notes,
	}
	if r.Review {
		t.Note = append(slices.Clone(t.Note), models.Annotation{Text: "Low confidence - needs review"})
	}
	return t
}

// taskDescription reads like "STAT read suggested by AI triage: possible
// fracture of neck of femur, right hip (97%)", naming the class that set
// the most urgent finding's priority.
func taskDescription(r analysis.Result) string {
	head := strings.ToUpper(r.Priority) + " read suggested by AI triage"
	top, ok := r.Top()
	if !ok {
		return head
	}
	fl := top.Flagged()
	return fmt.Sprintf("%s: possible %s, %s (%s)", head, lowerFirst(className(fl)), regionName(top), percent(fl.Probability))
}

// provenance records that the model (Device) authored every result from
// the ImagingStudy.
func (b *builder) provenance(rep *Report) models.Provenance {
	var targets []models.Reference
	for _, o := range rep.Observations {
		targets = append(targets, models.Reference{Reference: ptr("Observation/" + *o.Id)})
	}
	if rep.Binary != nil {
		targets = append(targets, models.Reference{Reference: ptr("Binary/" + *rep.Binary.Id)})
	}
	targets = append(targets, models.Reference{Reference: ptr("DiagnosticReport/" + *rep.DiagnosticReport.Id)})
	if rep.Task != nil {
		targets = append(targets, models.Reference{Reference: ptr("Task/" + *rep.Task.Id)})
	}
	p := models.Provenance{
		Id:       ptr(resourceID(b.r, "Provenance")),
		Meta:     aiMeta(),
		Target:   targets,
		Recorded: b.issued,
		Agent: []models.ProvenanceAgent{{
			Type: ptr(concept(codes.ProvenanceAuthor, "")),
			Who:  models.Reference{Reference: ptr("Device/" + b.deviceID)},
		}},
		Entity: []models.ProvenanceEntity{{Role: models.ProvenanceEntityRoleSource, What: b.imagingStudy}},
	}
	if len(b.notes) > 0 {
		// The warning is in no element of Provenance: "additional".
		p.Text = narrative(models.NarrativeStatusAdditional, "Results of AI model "+b.r.Model.ID+" "+b.r.Model.Version+". Model warning: "+b.r.Model.Warning+".")
	}
	return p
}

// imagingStudyRef is a literal reference when the study's resource id is
// known, else a logical one by Study Instance UID.
func imagingStudyRef(s analysis.Study) models.Reference {
	if s.ImagingStudyID != "" {
		return models.Reference{Reference: ptr("ImagingStudy/" + s.ImagingStudyID)}
	}
	return models.Reference{
		Type:       ptr("ImagingStudy"),
		Identifier: &models.Identifier{System: ptr(codes.SystemDICOMUID), Value: ptr("urn:oid:" + s.UID)},
	}
}

// aiMeta labels a resource as asserted by AI.
func aiMeta() *models.Meta {
	return &models.Meta{Security: []models.Coding{coding(tableCode(codes.SecurityAIAST))}}
}

// narrative is an XHTML text of one paragraph.
func narrative(status models.NarrativeStatus, text string) *models.Narrative {
	return &models.Narrative{
		Status: status,
		Div:    `<div xmlns="http://www.w3.org/1999/xhtml"><p>` + xmlEscape(text) + `</p></div>`,
	}
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}

// concept is the table entry key as a CodeableConcept.
func concept(key, text string) models.CodeableConcept {
	return models.CodeableConcept{Coding: []models.Coding{coding(tableCode(key))}, Text: nonEmpty(text)}
}

func coding(e codes.Entry) models.Coding {
	return models.Coding{System: ptr(e.System), Code: ptr(e.Code), Display: nonEmpty(e.Display)}
}

// tableCode returns a table entry the builders name by constant; a missing
// one (a bug TestCodeTable catches) yields an empty coding rather than a
// panic.
func tableCode(key string) codes.Entry {
	e, _ := codes.Lookup(key)
	return e
}

func requestPriority(p string) (models.RequestPriority, bool) {
	switch p {
	case "routine":
		return models.RequestPriorityRoutine, true
	case "urgent":
		return models.RequestPriorityUrgent, true
	case "asap":
		return models.RequestPriorityAsap, true
	case "stat":
		return models.RequestPriorityStat, true
	}
	return 0, false
}

// instant is t as a FHIR instant in UTC, to the second.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func ptr[T any](v T) *T { return &v }

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func lowerFirst(s string) string {
	if len(s) > 1 && s[1] >= 'A' && s[1] <= 'Z' { // keep acronyms: "DDH"
		return s
	}
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// percent is p as a whole percentage, "97%".
func percent(p float64) string { return analysis.Percent(p) }

var (
	fhirDateTime = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)
	dicomUID     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
)

// checkResult lists every field of r that BuildReport needs and lacks.
func checkResult(r analysis.Result) []orthotriage.FieldError {
	var fields []orthotriage.FieldError
	bad := func(field, msg string) { fields = append(fields, orthotriage.FieldError{Field: field, Message: msg}) }

	if r.Study.Patient == "" {
		bad("study.patient", "required")
	} else if !isRef(r.Study.Patient, "Patient") {
		bad("study.patient", `must be "Patient/{id}"`)
	}
	switch {
	case r.Study.UID == "" && r.Study.ImagingStudyID == "":
		bad("study", "uid or imagingStudyId required")
	case r.Study.ImagingStudyID != "" && !textx.IsFHIRID(r.Study.ImagingStudyID):
		bad("study.imagingStudyId", "not a FHIR id")
	case r.Study.ImagingStudyID == "" && !dicomUID.MatchString(r.Study.UID):
		bad("study.uid", "not a DICOM UID")
	}
	if r.Study.Started != "" && !fhirDateTime.MatchString(r.Study.Started) {
		bad("study.started", "not a FHIR dateTime")
	}
	for i, sr := range r.Study.BasedOn {
		if !isRef(sr, "ServiceRequest") {
			bad(fmt.Sprintf("study.basedOn[%d]", i), `must be "ServiceRequest/{id}"`)
		}
	}
	if r.Model.ID == "" {
		bad("model.id", "required")
	}
	if r.Model.Version == "" {
		bad("model.version", "required")
	}
	if r.Model.Task != TaskHip && r.Model.Task != TaskVertebral {
		bad("model.task", fmt.Sprintf("%q is not %q or %q", r.Model.Task, TaskHip, TaskVertebral))
	}
	if r.Analyzed.IsZero() {
		bad("analyzed", "required")
	}
	if r.Priority != "" {
		if _, ok := requestPriority(r.Priority); !ok {
			bad("priority", fmt.Sprintf("%q is not a request priority (%s)", r.Priority, strings.Join(analysis.Priorities, ", ")))
		}
	}
	if len(r.Findings) == 0 && r.Model.Task != TaskVertebral {
		// A vertebral reading may find no fracture, or nothing to read:
		// its report then says so in the conclusion.
		bad("findings", "at least one required")
	}
	regions := map[string]bool{}
	for i, f := range r.Findings {
		at := fmt.Sprintf("findings[%d]", i)
		fields = append(fields, checkFinding(r.Model.Task, at, f)...)
		if regions[f.Region] {
			bad(at+".region", fmt.Sprintf("%q appears twice", f.Region))
		}
		regions[f.Region] = true
	}
	return fields
}

func checkFinding(task, at string, f analysis.Finding) []orthotriage.FieldError {
	var fields []orthotriage.FieldError
	bad := func(field, msg string) {
		fields = append(fields, orthotriage.FieldError{Field: at + field, Message: msg})
	}
	if f.Region == "" {
		bad(".region", "required")
	}
	switch task {
	case TaskHip:
		if f.Laterality != "right" && f.Laterality != "left" {
			bad(".laterality", `must be "right" or "left" for a hip`)
		}
	case TaskVertebral:
		if _, ok := vertebraCode(f.Region); f.Region != "" && !ok {
			bad(".region", fmt.Sprintf("%q is not a vertebra T9-L5", f.Region))
		}
	}
	if f.Code.System == "" || f.Code.Code == "" {
		bad(".code", "system and code required")
	}
	if !validProbability(f.Probability) {
		bad(".probability", fmt.Sprintf("%v is not in [0, 1]", f.Probability))
	}
	for j, p := range f.Probabilities {
		if p.Class == "" {
			bad(fmt.Sprintf(".probabilities[%d].class", j), "required")
		}
		if !validProbability(p.Probability) {
			bad(fmt.Sprintf(".probabilities[%d].probability", j), fmt.Sprintf("%v is not in [0, 1]", p.Probability))
		}
	}
	if f.Priority != "" {
		if _, ok := requestPriority(f.Priority); !ok {
			bad(".priority", fmt.Sprintf("%q is not a request priority", f.Priority))
		}
	}
	return fields
}

func validProbability(p float64) bool { return p >= 0 && p <= 1 } // false for NaN

func isRef(ref, typ string) bool {
	_, _, ok := textx.CutReference(ref, typ)
	return ok
}
