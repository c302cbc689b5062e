package fhir

import (
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/fhir/codes"
)

// findingCoding is the coding of a model label's code: the display is the
// code system's term from the code table, whatever the manifest says;
// for a code the table lacks (another model's manifest), the manifest's
// code display, which may be empty.
func findingCoding(c analysis.Code) models.Coding {
	display := c.Display
	if e, ok := codes.Find(c.System, c.Code); ok {
		display = e.Display
	}
	return models.Coding{System: ptr(c.System), Code: ptr(c.Code), Display: nonEmpty(display)}
}

// vertebraCode returns the SNOMED body structure of a vertebra named like
// "L1" or "T12", or false when the table has none.
func vertebraCode(region string) (codes.Entry, bool) {
	return codes.Lookup(codes.VertebraPrefix + region)
}
