package phantom

import (
	"strconv"
	"strings"
)

// AcquisitionHeader are the labels.csv columns of a case's acquisition
// (Acquisition), after the case's own columns: rotation in degrees
// (clockwise on the displayed image), the patient centre's shift as
// fractions of the image's width and height, zoom, exposure in stops,
// noise as a fraction of full scale, the collimated margins at the image's
// left (x0), right (x1), top (y0) and bottom (y1) edges as fractions, the
// lead markers and the burnt-in text.
var AcquisitionHeader = []string{"rotation", "shift_x", "shift_y", "zoom", "exposure", "noise",
	"collimation_x0", "collimation_x1", "collimation_y0", "collimation_y1", "markers", "text"}

func (a Acquisition) row() []string {
	r := []string{decimal(a.Rotation, 3), decimal(a.ShiftX, 4), decimal(a.ShiftY, 4), decimal(a.Zoom, 4), decimal(a.Exposure, 3), decimal(a.Noise, 4)}
	for _, c := range a.Collimation {
		r = append(r, decimal(c, 4))
	}
	return append(r, a.Markers, a.Text)
}

// hipJointHeader are a hip's localiser columns after its side: the head's
// centre and radius, the joint region's box and its share in the
// collimated field, in pixels (HipJoint).
var hipJointHeader = []string{"cx", "cy", "r", "x", "y", "w", "h", "open"}

// PelvisHeader is the header of the pelvis labels.csv: each hip's class,
// difficulty and detail (the patient's left and right), each hip's joint
// (right_cx ... right_open, left_cx ... left_open), then the case's
// acquisition (AcquisitionHeader).
var PelvisHeader = pelvisHeader()

func pelvisHeader() []string {
	h := []string{"file", "left", "right", "left_difficulty", "right_difficulty", "left_detail", "right_detail"}
	for _, side := range []string{"right", "left"} {
		for _, c := range hipJointHeader {
			h = append(h, side+"_"+c)
		}
	}
	return append(h, AcquisitionHeader...)
}

// Row is the case's labels.csv row (PelvisHeader).
func (c PelvisCase) Row(file string) []string {
	r := []string{file, c.Left.Class, c.Right.Class, c.Left.Difficulty, c.Right.Difficulty, c.Left.Detail, c.Right.Detail}
	for _, h := range []Hip{c.Right, c.Left} {
		j := h.Joint
		r = append(r, decimal(j.Centre[0], 1), decimal(j.Centre[1], 1), decimal(j.Radius, 1), decimal(j.Box[0], 1), decimal(j.Box[1], 1), decimal(j.Box[2], 1), decimal(j.Box[3], 1), decimal(j.Open, 3))
	}
	return append(r, c.Acquisition.row()...)
}

// decimal formats v with prec decimals, without the sign of a zero.
func decimal(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Trim(s, "-0.") == "" {
		return s[strings.Count(s, "-"):]
	}
	return s
}
