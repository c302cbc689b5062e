package phantom

import (
	"math/rand/v2"

	"github.com/orthotriage/orthotriage/imaging"
)

// PelvisCase is one generated AP pelvis radiograph and its truth. Right and
// Left are the patient's sides: the right hip is on the image's left.
type PelvisCase struct {
	ID          string
	Right, Left Hip
	// Acquisition is how the patient was positioned and exposed.
	Acquisition Acquisition
	Image       imaging.Radiograph
}

// Pelvis generates case i of the pelvis series seeded by seed, with the
// default variation.
func Pelvis(seed uint64, i int) PelvisCase {
	pc, _ := PelvisVaried(seed, i, Variation{}) // the zero Variation is valid
	return pc
}

// PelvisVaried generates case i of the pelvis series seeded by seed with
// variation v: the same patient as Pelvis(seed, i), positioned and exposed
// as v draws. It fails only when v is invalid.
func PelvisVaried(seed uint64, i int, v Variation) (PelvisCase, error) {
	if err := v.Validate(); err != nil {
		return PelvisCase{}, err
	}
	return newPelvisScene(seed, i, v).expose(), nil
}

// pelvisScene is a pelvis case before the detector: its attenuation layers,
// detector and generators.
type pelvisScene struct {
	seed  uint64
	index int
	pc    PelvisCase
	l     layers
	det   detector
	rng   *rand.Rand
	v     Variation
	draws variationDraws
}

func newPelvisScene(seed uint64, i int, v Variation) *pelvisScene {
	rng := caseRNG(seed, "pelvis", i)
	draws := drawVariation(seed, "pelvis", i)
	pc := PelvisCase{ID: caseID("pelvis", seed, i)}
	// Field of view about 400 x 330 mm at 0.6-0.8 mm per pixel.
	spacing := uniform(rng, 0.62, 0.8)
	width, height := uniform(rng, 380, 420), uniform(rng, 315, 345)
	cols, rows := int(width/spacing), int(height/spacing)
	theta := uniform(rng, -0.06, 0.06)
	shift := vec{uniform(rng, -12, 12), uniform(rng, -10, 10)}
	l := newLayers(rows, cols, spacing, v.pose(draws, theta, shift, rows, cols, spacing))
	// A patient turned, off centre or less magnified shows anatomy the
	// default field never reaches: more lumbar spine, more femur.
	wide := v.Rotate > 0 || v.Shift > 0 || v.Zoom > 0
	s := uniform(rng, 0.92, 1.08) // body size

	// Soft tissue: the body outline and some bowel gas.
	body := ellipsoid(vec{0, 20}, uniform(rng, 170, 200)*s, uniform(rng, 230, 280), 0, 0, 0, 0.021)
	l.soft.add(body, 1)
	for range 2 + rng.IntN(4) {
		c := vec{uniform(rng, -90, 90), uniform(rng, -130, -20)}
		l.soft.add(ellipsoid(c, uniform(rng, 6, 20), uniform(rng, 5, 14), uniform(rng, 0, 3), 0, 0, -0.015), 1)
	}

	det := newDetector(rng)
	v.expose(draws, &det)
	hips := [2]*Hip{&pc.Right, &pc.Left}
	specs := [2]hipSpec{}
	for k := range 2 {
		class := HipClasses[pick(rng, hipPrevalence)]
		subtle := class != "normal" && class != "tha" && rng.Float64() < SubtleShare
		specs[k] = newHipSpec(rng, s)
		detail := specs[k].applyClass(rng, class, subtle)
		hips[k].Class, hips[k].Detail, hips[k].Difficulty = class, detail, "typical"
		if subtle {
			hips[k].Difficulty = "subtle"
		}
		if wide {
			specs[k].shaftEnd = specs[k].shaftTop.add(specs[k].shaftEnd.sub(specs[k].shaftTop).norm().mul(320))
		}
	}
	// Osteoporosis is shared by both sides.
	porosis := uniform(rng, 0.75, 1.1)
	for k := range 2 {
		h := specs[k]
		h.trab *= porosis
		bone, metalParts := h.fields(rng)
		bone = append(bone, pelvisBones(rng, s, h)...)
		for _, f := range bone {
			if k == 0 { // the patient's right, drawn on the image's left
				f = mirrored(f)
			}
			l.bone.add(f, 1)
		}
		for _, f := range metalParts {
			if k == 0 {
				f = mirrored(f)
			}
			l.metal.add(f, 1)
		}
	}
	for _, f := range sacrum(rng, s, 1, 0.4*porosis) {
		l.bone.add(f, 1)
	}
	if wide {
		for _, f := range upperLumbar(s, 1, 0.4*porosis) {
			l.bone.add(f, 1)
		}
	}
	pc.Acquisition = acquisition(l.bone, det)
	pc.Acquisition.Markers, pc.Acquisition.marks = v.leadMarkers(draws, "pelvis", l.metal, det.collimation)
	for k := range 2 {
		j := specs[k].joint(l.bone, k == 0)
		j.Open = pc.Acquisition.open(j.Box, rows, cols)
		hips[k].Joint = j
	}
	return &pelvisScene{seed: seed, index: i, pc: pc, l: l, det: det, rng: rng, v: v, draws: draws}
}

// expose takes the radiograph of the scene.
func (s *pelvisScene) expose() PelvisCase {
	pc, rng := s.pc, s.rng
	pc.Image = s.det.expose(rng, s.l)
	text, marks := s.v.burnedText(s.draws, "pelvis", &pc.Image)
	pc.Acquisition.Text = text
	pc.Acquisition.marks = append(pc.Acquisition.marks, marks...)
	pc.Image.StudyInstanceUID, pc.Image.SeriesInstanceUID, pc.Image.SOPInstanceUID = caseUIDs(rng, s.seed, "pelvis", s.index, s.v)
	pc.Image.PatientID = pc.ID
	pc.Image.BodyPartExamined = "PELVIS"
	pc.Image.ViewPosition = "AP"
	return pc
}

// caseUIDs are a case's study, series and instance UIDs: drawn from its
// generator, or for a varied case from one of the variation's own, so that
// a varied image of a patient is a study of its own and never shares a
// UID with the default image or another variation's.
func caseUIDs(rng *rand.Rand, seed uint64, kind string, i int, v Variation) (study, series, sop string) {
	study, series, sop = uid(rng), uid(rng), uid(rng)
	if v != (Variation{}) {
		u := caseRNG(seed, kind+"-uid "+v.String(), i)
		study, series, sop = uid(u), uid(u), uid(u)
	}
	return study, series, sop
}
