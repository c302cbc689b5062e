package analysis

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/internal/urlx"
)

// ErrOtherPatient means the study's subject is not the patient the call is
// for: it is neither analysed nor shown for that patient.
var ErrOtherPatient = errors.New("analysis: the ImagingStudy's subject is not the call's patient")

// A Result holds two kinds of facts. What the pixels say (model, images,
// findings, priority) is computed once per study and cached. What names a
// patient, an ImagingStudy or a FHIR server is bound from the call at answer
// time: a study that reaches the service under another patient (a merge, a
// misfiled study) is answered for that call's patient and study, never with
// the first caller's.

// boundStudy is the Study of in as this call names it: its Study Instance
// UID, ImagingStudy id, start and orders, and its patient, which must be the
// call's patient when the call names one.
func boundStudy(in Input) (Study, error) {
	s := Study{UID: imaging.StudyInstanceUID(in.Study), ImagingStudyID: deref(in.Study.Id), Started: deref(in.Study.Started)}
	for _, b := range in.Study.BasedOn {
		if b.Reference != nil && strings.HasPrefix(*b.Reference, "ServiceRequest/") {
			s.BasedOn = append(s.BasedOn, *b.Reference)
		}
	}
	if s.UID == "" && s.ImagingStudyID == "" {
		return Study{}, errors.New("analysis: the ImagingStudy has neither a Study Instance UID identifier nor an id")
	}
	subject := deref(in.Study.Subject.Reference)
	switch {
	case in.Patient == "":
		s.Patient = relativeSubject(subject, in.FHIRServer)
	case SubjectIs(subject, in.Patient, in.FHIRServer):
		s.Patient = in.Patient
	default:
		return Study{}, ErrOtherPatient
	}
	return s, nil
}

// relativeSubject writes a subject given as its absolute URL on the FHIR
// server as "Patient/{id}", as a hook's context names it, so that a job
// (precompute) and a hook bind one study to the same patient, with the same
// resource ids; any other subject is kept as written.
func relativeSubject(subject, fhirServer string) string {
	if id, ok := PatientOf(subject, fhirServer); ok {
		return "Patient/" + id
	}
	return subject
}

// PatientOf returns the id of a Patient reference as written: relative
// ("Patient/{id}") or absolute under fhirServer (urlx.Under, by whole path
// segments). A reference to another server or another type gives false:
// the same id on another server is another patient.
func PatientOf(ref, fhirServer string) (string, bool) {
	// Only an absolute URL (scheme://host...) can be under the server; a
	// relative reference, the common case, needs no URL parsed.
	if strings.Contains(ref, "://") {
		rest, ok := urlx.Under(fhirServer, ref)
		if !ok {
			return "", false
		}
		ref = rest
	}
	id, ok := strings.CutPrefix(ref, "Patient/")
	if !ok || id == "" || strings.ContainsAny(id, "/?#%") {
		return "", false
	}
	return id, true
}

// SubjectIs reports whether a subject reference as written names patient
// ("Patient/{id}") of fhirServer.
func SubjectIs(subject, patient, fhirServer string) bool {
	id, ok := PatientOf(subject, fhirServer)
	return ok && "Patient/"+id == patient
}

// bind returns r, as cached, answered for in: the patient, ImagingStudy,
// FHIR server and tenant are in's, never those of the call that first
// computed it.
func bind(r Result, in Input) (Result, error) {
	s, err := boundStudy(in)
	if err != nil {
		return Result{}, err
	}
	if r.Study.UID != "" && s.UID != "" && r.Study.UID != s.UID {
		return Result{}, fmt.Errorf("analysis: cached result is of study %s, not %s", r.Study.UID, s.UID)
	}
	r.Tenant, r.FHIRServer, r.Study = in.Tenant, in.FHIRServer, s
	r.Findings = cloneFindings(r.Findings)
	return r, nil
}

// pixelsOnly is r as it is cached: what the pixels say, with nothing that
// names a patient, an ImagingStudy or a FHIR server.
func pixelsOnly(r Result) Result {
	r.Tenant, r.FHIRServer = "", ""
	r.Study = Study{UID: r.Study.UID}
	return r
}

// cloneFindings copies the findings slice so that one caller's result
// cannot change another's through a shared backing array.
func cloneFindings(fs []Finding) []Finding {
	if fs == nil {
		return nil
	}
	return append([]Finding(nil), fs...)
}

// BoundKey names one computed result as bound to a call: the same pixels
// answered for another patient, ImagingStudy or server are another result
// (a recomputation is another too, and so is a reading with vertebral
// bodies the caller gave: Analyzed alone, to the second, would not tell
// two readings of one second apart). What is built from a result (its FHIR
// resources, its card) and what is done with it (write-back) is kept and
// done once per BoundKey.
func (r Result) BoundKey() string {
	parts := []string{r.Tenant, r.FHIRServer, r.Study.Key(), r.Study.Patient, r.Study.ImagingStudyID, r.Study.Started,
		strings.Join(r.Study.BasedOn, ","), r.Model.ID, r.Model.Version, r.Analyzed.Format(time.RFC3339Nano), r.GivenBodies}
	var b strings.Builder
	for _, p := range parts {
		// Length-prefixed, so that no two part lists share a key.
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}
