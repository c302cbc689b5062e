package inference

import "image"

// MinMatchIoU is the overlap at which a localised body counts as the
// labelled vertebra of the same level.
const MinMatchIoU = 0.3

// BoxIoU is the intersection over union of two boxes.
func BoxIoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ai, aa, ab := float64(in.Dx()*in.Dy()), float64(a.Dx()*a.Dy()), float64(b.Dx()*b.Dy())
	return ai / (aa + ab - ai)
}

// MatchBody tells whether a localised body is the labelled vertebra of its
// level: labelled holds the labelled boxes by level, and the body matches
// when its box overlaps its level's by MinMatchIoU or more. iou is that
// overlap, 0 when no vertebra of the level is labelled. Evaluation and the
// training-data writer count a localisation with this one rule.
func MatchBody(b Body, labelled map[string]image.Rectangle) (iou float64, ok bool) {
	box, found := labelled[b.Level]
	if !found {
		return 0, false
	}
	iou = BoxIoU(b.Box, box)
	return iou, iou >= MinMatchIoU
}
