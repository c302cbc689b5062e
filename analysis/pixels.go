package analysis

import (
	"context"
	"maps"

	"github.com/orthotriage/orthotriage/imaging"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Pixels retrieves the radiograph of in's study that a result was read
// from (the instance sop, else the first one a loaded model of in.Task
// reads), through the same selection, endpoints and access as an analysis:
// only the call's registered DICOMweb bases. It is how the SMART app shows
// the image; the caller has proved its access to the study.
func (a *Analyzer) Pixels(ctx context.Context, in Input, sop string) (*imaging.Image, error) {
	refs, _ := imaging.SelectInstances(in.Study, imaging.SelectOptions{MaxPerStudy: max(1, a.PerStudy)})
	var pick *imaging.InstanceRef
	for i, ref := range refs {
		if _, ok := a.modelFor(in.Task, ref.BodySite); !ok {
			continue
		}
		if ref.SOPInstanceUID == sop || (sop == "" && pick == nil) {
			pick = &refs[i]
		}
		if ref.SOPInstanceUID == sop {
			break
		}
	}
	if pick == nil || (sop != "" && pick.SOPInstanceUID != sop) {
		return nil, ErrNoRadiograph
	}
	if in.ResolveEndpoints != nil {
		all := maps.Clone(in.Endpoints)
		if all == nil {
			all = map[string]models.Endpoint{}
		}
		maps.Copy(all, in.ResolveEndpoints(ctx))
		in.Endpoints = all
	}
	return a.retrieve(ctx, in, *pick)
}

// Pixels retrieves the radiograph a result of in was read from; see
// Analyzer.Pixels.
func (c *Cached) Pixels(ctx context.Context, in Input, sop string) (*imaging.Image, error) {
	return c.analyzer.Pixels(ctx, in, sop)
}
