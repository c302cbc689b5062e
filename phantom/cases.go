package phantom

import "github.com/orthotriage/orthotriage/imaging"

// PelvisCase is one generated AP pelvis radiograph and its truth. Right and
// Left are the patient's sides: the right hip is on the image's left.
type PelvisCase struct {
	ID          string
	Right, Left Hip
	Image       imaging.Radiograph
}

// Pelvis generates case i of the pelvis series seeded by seed.
func Pelvis(seed uint64, i int) PelvisCase {
	rng := caseRNG(seed, "pelvis", i)
	pc := PelvisCase{ID: caseID("pelvis", seed, i)}
	// Field of view about 400 x 330 mm at 0.6-0.8 mm per pixel.
	spacing := uniform(rng, 0.62, 0.8)
	width, height := uniform(rng, 380, 420), uniform(rng, 315, 345)
	cols, rows := int(width/spacing), int(height/spacing)
	theta := uniform(rng, -0.06, 0.06)
	shift := vec{uniform(rng, -12, 12), uniform(rng, -10, 10)}
	l := newLayers(rows, cols, spacing, theta, shift)
	s := uniform(rng, 0.92, 1.08) // body size

	// Soft tissue: the body outline and some bowel gas.
	body := ellipsoid(vec{0, 20}, uniform(rng, 170, 200)*s, uniform(rng, 230, 280), 0, 0, 0, 0.021)
	l.soft.add(body, 1)
	for range 2 + rng.IntN(4) {
		c := vec{uniform(rng, -90, 90), uniform(rng, -130, -20)}
		l.soft.add(ellipsoid(c, uniform(rng, 6, 20), uniform(rng, 5, 14), uniform(rng, 0, 3), 0, 0, -0.015), 1)
	}

	det := newDetector(rng)
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
	pc.Image = det.expose(rng, l)
	pc.Image.StudyInstanceUID, pc.Image.SeriesInstanceUID, pc.Image.SOPInstanceUID = uid(rng), uid(rng), uid(rng)
	pc.Image.PatientID = pc.ID
	pc.Image.BodyPartExamined = "PELVIS"
	pc.Image.ViewPosition = "AP"
	return pc
}
