package imaging

import (
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// imageSOPClasses are the projection radiograph storage classes analysed.
var imageSOPClasses = map[string]bool{
	SOPClassCR:             true,
	SOPClassDXPresentation: true,
	SOPClassDXProcessing:   true,
}

// radiographModalities are the series modalities that hold projection radiographs.
var radiographModalities = map[string]bool{"CR": true, "DX": true}

// SelectOptions bound which instances of a study are retrieved.
type SelectOptions struct {
	PerSeries   int      // images taken from each series; 1 by default
	MaxPerStudy int      // images taken from the whole study; 4 by default
	BodyParts   []string // when set, series whose body site or part names none of these are skipped (case-insensitive substrings)
}

// InstanceRef names one image to retrieve. SOPInstanceUID is empty when the
// ImagingStudy lists no instances for the series: the whole series is then
// retrieved and its first images kept.
type InstanceRef struct {
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUID    string
	SOPClassUID       string
	Modality          string
	BodySite          string
	Endpoints         []models.Reference // the series' endpoints, else the study's
}

// Skip says why a series or instance was not selected.
type Skip struct {
	Series, Instance string
	Reason           string
}

// StudyInstanceUID returns the DICOM Study Instance UID of an R4
// ImagingStudy: its identifier with system urn:dicom:uid, "urn:oid:" removed.
func StudyInstanceUID(s models.ImagingStudy) string {
	for _, id := range s.Identifier {
		if id.System != nil && *id.System == "urn:dicom:uid" && id.Value != nil {
			return strings.TrimPrefix(*id.Value, "urn:oid:")
		}
	}
	return ""
}

// SelectInstances picks the radiographs to retrieve from a study: series of
// modality CR or DX (or unknown modality with a radiograph SOP class), image
// SOP classes only (structured reports, presentation states and other
// non-images are skipped), optionally only the wanted body parts; the first
// PerSeries images of each series and at most MaxPerStudy in all.
func SelectInstances(s models.ImagingStudy, o SelectOptions) ([]InstanceRef, []Skip) {
	if o.PerSeries <= 0 {
		o.PerSeries = 1
	}
	if o.MaxPerStudy <= 0 {
		o.MaxPerStudy = 4
	}
	studyUID := StudyInstanceUID(s)
	var refs []InstanceRef
	var skips []Skip
	for _, se := range s.Series {
		mod := strings.ToUpper(codeOf(&se.Modality))
		site := displayOf(se.BodySite)
		switch {
		case mod != "" && !radiographModalities[mod]:
			skips = append(skips, Skip{Series: se.Uid, Reason: "modality " + mod + " is not CR or DX"})
			continue
		case len(o.BodyParts) > 0 && site != "" && !matchesAny(site, o.BodyParts):
			skips = append(skips, Skip{Series: se.Uid, Reason: "body site " + site + " not wanted"})
			continue
		}
		endpoints := se.Endpoint
		if len(endpoints) == 0 {
			endpoints = s.Endpoint
		}
		base := InstanceRef{StudyInstanceUID: studyUID, SeriesInstanceUID: se.Uid, Modality: mod, BodySite: site, Endpoints: endpoints}
		if len(se.Instance) == 0 {
			if len(refs) < o.MaxPerStudy {
				refs = append(refs, base)
			}
			continue
		}
		taken := 0
		for _, in := range se.Instance {
			class := strings.TrimPrefix(codeOf(&in.SopClass), "urn:oid:")
			if !imageSOPClasses[class] {
				skips = append(skips, Skip{Series: se.Uid, Instance: in.Uid, Reason: "SOP class " + class + " is not a radiograph image"})
				continue
			}
			if taken == o.PerSeries || len(refs) == o.MaxPerStudy {
				break
			}
			r := base
			r.SOPInstanceUID, r.SOPClassUID = in.Uid, class
			refs = append(refs, r)
			taken++
		}
	}
	return refs, skips
}

func codeOf(c *models.Coding) string {
	if c == nil || c.Code == nil {
		return ""
	}
	return *c.Code
}

func displayOf(c *models.Coding) string {
	if c == nil {
		return ""
	}
	if c.Display != nil {
		return *c.Display
	}
	return codeOf(c)
}

func matchesAny(s string, wanted []string) bool {
	s = strings.ToLower(s)
	for _, w := range wanted {
		if strings.Contains(s, strings.ToLower(w)) {
			return true
		}
	}
	return false
}
