package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/phantom"
)

// PhantomSeed is the phantom series the kit draws its radiographs from:
// the project's held-out test seed, whose cases the end-to-end tests pin.
const PhantomSeed = 3

// DefaultPrefix starts every id the kit gives a resource.
const DefaultPrefix = "orthotriage-sandbox"

// IdentifierSystem is the system of the identifier every seeded Patient
// carries (its value is the Patient's id), so the data can be found again.
const IdentifierSystem = "urn:orthotriage:sandbox"

// Phantom cases of seed 3 given to the first patients; later patients get
// cases 100+i. Their truths are checked by the end-to-end tests.
var (
	pelvisCases = []int{13, 2, 7} // left femoral neck fracture; left OA; both normal
	spineCases  = []int{1, 6}     // L1 acute (typical); L1 chronic (typical)
)

// studyDay is the day of every seeded study; the clinical data is dated
// from it.
var studyDay = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// Plan is what seeding a given number of patients makes: the same for the
// same prefix and count, on every server.
type Plan struct {
	Prefix   string
	Endpoint string // Endpoint id
	Patients []PlannedPatient
}

// PlannedPatient is one synthetic patient: an AP pelvis and a lateral spine
// study, with the clinical data the vertebral nomogram reads.
type PlannedPatient struct {
	ID          string
	PelvisStudy string // ImagingStudy ids
	SpineStudy  string
	PelvisCase  int
	SpineCase   int
	// Expect is the card indicator each service's answer must hold for
	// this patient ("" where the kit does not insist), by service id.
	Expect map[string]string
}

// NewPlan returns the plan for n patients (at least 1) under prefix.
func NewPlan(prefix string, n int) Plan {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	p := Plan{Prefix: prefix, Endpoint: prefix + "-pacs"}
	for i := 1; i <= max(n, 1); i++ {
		pp := PlannedPatient{ID: fmt.Sprintf("%s-%d", prefix, i), PelvisCase: 100 + i, SpineCase: 100 + i, Expect: map[string]string{}}
		if i <= len(pelvisCases) {
			pp.PelvisCase = pelvisCases[i-1]
		}
		if i <= len(spineCases) {
			pp.SpineCase = spineCases[i-1]
		}
		pp.PelvisStudy, pp.SpineStudy = pp.ID+"-pelvis", pp.ID+"-spine"
		if i == 1 { // a femoral neck fracture: STAT; an acute L1 fracture with its clinical data: urgent
			pp.Expect[ServiceHip] = "critical"
			pp.Expect[ServiceVertebral] = "warning"
		}
		p.Patients = append(p.Patients, pp)
	}
	return p
}

// Service ids of orthotriage's discovery on patient-view.
const (
	ServiceHip       = "hip-radiograph-screening"
	ServiceVertebral = "vertebral-fracture-acuity"
)

// SeedOptions says where to seed.
type SeedOptions struct {
	FHIR      string // FHIR R4 base URL
	FHIRToken string // bearer token for it, if it needs one
	DICOMweb  string // DICOMweb base (STOW-RS at {base}/studies)
	// DICOMwebUser and DICOMwebPassword, or DICOMwebToken, authenticate
	// to the PACS when it needs it.
	DICOMwebUser, DICOMwebPassword, DICOMwebToken string
	// EndpointAddress is the DICOMweb base as the service reaches it
	// (the Endpoint's address); DICOMweb when empty.
	EndpointAddress string
	Patients        int
	Prefix          string
	Timeout         time.Duration // per request; 30 s when zero
	// Wait, when set, is how long to wait for the FHIR server's
	// /metadata to answer before seeding (a server still starting).
	Wait time.Duration
}

// Seeded is one resource or image the seeding stored.
type Seeded struct {
	Kind string `json:"kind"` // a resource type, or "DICOM"
	ID   string `json:"id"`   // resource id, or SOP Instance UID
	What string `json:"what"`
}

// Seed stores the plan's patients on the FHIR server and their radiographs
// in the PACS. Every resource has a stable id (PUT, update as create) and
// every image a stable UID, so seeding again updates, never duplicates.
func Seed(ctx context.Context, o SeedOptions) (Plan, []Seeded, error) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if o.FHIR == "" || o.DICOMweb == "" {
		return Plan{}, nil, fmt.Errorf("seed: --fhir and --dicomweb are required")
	}
	plan := NewPlan(o.Prefix, o.Patients)
	fc := newFHIRClient(o.FHIR, o.FHIRToken, timeout)
	if err := waitForServer(ctx, fc, o.Wait); err != nil {
		return plan, nil, fmt.Errorf("seed: %w", err)
	}
	addr := o.EndpointAddress
	if addr == "" {
		addr = strings.TrimRight(o.DICOMweb, "/")
	}
	var made []Seeded
	endpoint := map[string]any{
		"resourceType": "Endpoint", "id": plan.Endpoint, "status": "active",
		"connectionType": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "dicom-wado-rs"},
		"name":           "orthotriage sandbox PACS (DICOMweb)",
		"payloadType":    []any{map[string]any{"text": "DICOM"}},
		"address":        addr,
	}
	if err := fc.put(ctx, endpoint); err != nil {
		return plan, made, fmt.Errorf("seed: %w", err)
	}
	made = append(made, Seeded{"Endpoint", plan.Endpoint, "DICOMweb base " + addr})
	for _, p := range plan.Patients {
		pelvis := phantom.Pelvis(PhantomSeed, p.PelvisCase)
		spine := phantom.Spine(PhantomSeed, p.SpineCase)
		pelvis.Image.PatientID, spine.Image.PatientID = p.ID, p.ID
		if err := stow(ctx, o, timeout, pelvis.Image, spine.Image); err != nil {
			return plan, made, fmt.Errorf("seed %s: %w", p.ID, err)
		}
		made = append(made,
			Seeded{"DICOM", pelvis.Image.SOPInstanceUID, fmt.Sprintf("AP pelvis, phantom %d: right %s, left %s", p.PelvisCase, pelvis.Right.Class, pelvis.Left.Class)},
			Seeded{"DICOM", spine.Image.SOPInstanceUID, fmt.Sprintf("lateral spine, phantom %d: %s", p.SpineCase, fractures(spine))})
		for _, r := range patientResources(p, plan.Endpoint, pelvis, spine) {
			if err := fc.put(ctx, r.resource); err != nil {
				return plan, made, fmt.Errorf("seed %s: %w", p.ID, err)
			}
			made = append(made, Seeded{r.resource["resourceType"].(string), r.resource["id"].(string), r.what})
		}
	}
	return plan, made, nil
}

func fractures(sc phantom.SpineCase) string {
	var out []string
	for _, v := range sc.Vertebrae {
		if v.Fracture != "none" && v.Fracture != "" {
			out = append(out, v.Level+" "+v.Fracture)
		}
	}
	if len(out) == 0 {
		return "no fracture"
	}
	return strings.Join(out, ", ")
}

type described struct {
	resource map[string]any
	what     string
}

// patientResources are one patient's resources, in an order a server
// checking references accepts (the Patient first).
func patientResources(p PlannedPatient, endpoint string, pelvis phantom.PelvisCase, spine phantom.SpineCase) []described {
	cl := spine.Clinical
	gender := map[string]string{"F": "female", "M": "male"}[cl.Sex]
	subject := map[string]any{"reference": "Patient/" + p.ID}
	onset := studyDay.AddDate(0, 0, -cl.SymptomDays)
	fall := "confirmed"
	if !cl.Trauma {
		fall = "refuted" // a fall was asked about and ruled out
	}
	return []described{
		{map[string]any{
			"resourceType": "Patient", "id": p.ID,
			"identifier": []any{map[string]any{"system": IdentifierSystem, "value": p.ID}},
			"name":       []any{map[string]any{"family": "Phantom", "given": []any{"Sandbox " + strings.TrimPrefix(p.ID[strings.LastIndex(p.ID, "-"):], "-")}}},
			"gender":     gender, "birthDate": studyDay.AddDate(-cl.Age, 0, -40).Format("2006-01-02"),
		}, fmt.Sprintf("synthetic patient, %s, %d years at the study", gender, cl.Age)},
		{study(p.PelvisStudy, subject, endpoint, pelvis.Image, "12921003", "Pelvis", "XR pelvis"), "AP pelvis study"},
		{study(p.SpineStudy, subject, endpoint, spine.Image, "421060004", "Spine", "XR spine lateral"), "lateral spine study"},
		{map[string]any{
			"resourceType": "Observation", "id": p.ID + "-bmd", "status": "final",
			"category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging"}}}},
			"code":     map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "38267-1", "display": "DXA Lumbar spine [T-score] Bone density"}}},
			"subject":  subject, "effectiveDateTime": studyDay.AddDate(0, -5, 0).Format("2006-01-02"),
			"valueQuantity": map[string]any{"value": cl.TScore, "unit": "T-score", "system": "http://unitsofmeasure.org", "code": "{T-score}"},
		}, fmt.Sprintf("DXA lumbar spine T-score %.1f", cl.TScore)},
		{map[string]any{
			"resourceType": "Condition", "id": p.ID + "-back-pain",
			"clinicalStatus": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}}},
			"code":           map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}}},
			"subject":        subject, "onsetDateTime": onset.Format("2006-01-02"),
		}, fmt.Sprintf("low back pain since %d days before the study", cl.SymptomDays)},
		{map[string]any{
			"resourceType": "Condition", "id": p.ID + "-fall",
			"verificationStatus": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": fall}}},
			"code":               map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "1912002", "display": "Fall"}}},
			"subject":            subject, "onsetDateTime": onset.AddDate(0, 0, -1).Format("2006-01-02"),
		}, "fall the day before the pain, " + fall},
	}
}

func study(id string, subject map[string]any, endpoint string, im imaging.Radiograph, site, siteDisplay, description string) map[string]any {
	return map[string]any{
		"resourceType": "ImagingStudy", "id": id, "status": "available",
		"identifier":  []any{map[string]any{"system": "urn:dicom:uid", "value": "urn:oid:" + im.StudyInstanceUID}},
		"subject":     subject,
		"started":     studyDay.Format(time.RFC3339),
		"description": description,
		"endpoint":    []any{map[string]any{"reference": "Endpoint/" + endpoint}},
		"series": []any{map[string]any{
			"uid":      im.SeriesInstanceUID,
			"modality": map[string]any{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": im.Modality},
			"bodySite": map[string]any{"system": "http://snomed.info/sct", "code": site, "display": siteDisplay},
			"instance": []any{map[string]any{"uid": im.SOPInstanceUID, "sopClass": map[string]any{"system": "urn:ietf:rfc:3986", "code": "urn:oid:" + im.SOPClassUID}}},
		}},
	}
}

// stow stores the images in the PACS with one STOW-RS request. Storing
// an instance again is accepted by DICOMweb servers (same UIDs).
func stow(ctx context.Context, o SeedOptions, timeout time.Duration, images ...imaging.Radiograph) error {
	var raw [12]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("stow: %w", err)
	}
	boundary := "orthotriage-" + hex.EncodeToString(raw[:])
	var body bytes.Buffer
	for _, im := range images {
		fmt.Fprintf(&body, "--%s\r\nContent-Type: application/dicom\r\n\r\n", boundary)
		if err := imaging.WriteDICOM(&body, im); err != nil {
			return fmt.Errorf("stow: write DICOM: %w", err)
		}
		body.WriteString("\r\n")
	}
	fmt.Fprintf(&body, "--%s--\r\n", boundary)
	url := strings.TrimRight(o.DICOMweb, "/") + "/studies"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &body)
	if err != nil {
		return fmt.Errorf("stow: %w", err)
	}
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+boundary)
	req.Header.Set("Accept", "application/dicom+json")
	switch {
	case o.DICOMwebToken != "":
		req.Header.Set("Authorization", "Bearer "+o.DICOMwebToken)
	case o.DICOMwebUser != "":
		req.SetBasicAuth(o.DICOMwebUser, o.DICOMwebPassword)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return fmt.Errorf("STOW-RS %s: %w", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("STOW-RS %s: %d %s", url, resp.StatusCode, snippet(out))
	}
	return nil
}

// waitForServer polls the FHIR server's capability statement until it
// answers 200, for at most wait (not at all when zero).
func waitForServer(ctx context.Context, fc *fhirClient, wait time.Duration) error {
	if wait == 0 {
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		status, _, err := fc.do(ctx, http.MethodGet, "metadata", nil)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the FHIR server did not answer /metadata within %s (last: %d %v)", wait, status, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
