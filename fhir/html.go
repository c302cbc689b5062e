package fhir

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"

	"github.com/orthotriage/orthotriage/analysis"
)

// pngSignature starts every PNG file; heatmaps without it are left out of
// the HTML rather than embedded as an image of unknown type.
const pngSignature = "\x89PNG\r\n\x1a\n"

// reportPage is the HTML summary: self-contained (inline style, heatmaps
// as data: URIs) so that it renders the same from an attachment or a URL.
// html/template escapes every value taken from the Result.
var reportPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}
th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:middle}
.warning{background:#fff3cd;border:1px solid #e0b100;padding:.5em}
.prio{font-weight:bold}
img{width:96px;height:auto;image-rendering:pixelated}
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p><strong>Preliminary:</strong> produced by an AI model, not a signed radiology report.</p>
{{if .Warning}}<p class="warning"><strong>Model warning:</strong> {{.Warning}}</p>
{{end}}{{if .Priority}}<p class="prio">Suggested read priority: {{.Priority}}</p>
{{end}}{{if .Review}}<p class="warning">Low confidence - needs review by a radiologist.</p>
{{end}}<table>
<thead><tr><th>Region</th><th>Finding</th><th>Probability</th><th>Priority</th><th>Status</th><th>{{.ImageHeader}}</th></tr></thead>
<tbody>
{{range .Rows}}<tr><td>{{.Region}}</td><td>{{.Finding}}</td><td>{{.Probability}}</td><td>{{or .Priority "-"}}</td><td>{{.Status}}</td><td>{{if .Heatmap}}<img src="{{.Heatmap}}" alt="{{$.ImageHeader}}, {{.Region}}">{{else}}-{{end}}</td></tr>
{{end}}</tbody>
</table>
{{if .Localised}}<p>Vertebrae localised: {{.Localised}}.</p>
{{end}}<p>{{.Conclusion}}</p>
<p><small>Model {{.Model}}. Study {{.Study}}. Analysed {{.Analyzed}}.</small></p>
</body>
</html>
`))

type reportRow struct {
	Region, Finding, Probability, Priority, Status string
	Heatmap                                        template.URL
}

// ReportHTML renders the HTML summary of r that BuildReport attaches to the
// DiagnosticReport (presentedForm), so a service can also serve it at a
// URL: a table per region with the finding, probability, priority and
// activation map, the conclusion, and the model's warning.
func ReportHTML(r analysis.Result) ([]byte, error) {
	data := struct {
		Title, Warning, Priority, Conclusion, Model, Study, Analyzed string
		ImageHeader, Localised                                       string
		Review                                                       bool
		Rows                                                         []reportRow
	}{
		Title:      reportTitle(r),
		Priority:   strings.ToUpper(r.Priority),
		Review:     r.Review,
		Conclusion: Conclusion(r),
		Model:      strings.TrimSpace(r.Model.ID + " " + r.Model.Version),
		Study:      r.Study.Key(),
		Analyzed:   instant(r.Analyzed),
		// Hips show the activation map; vertebrae the region the network read.
		ImageHeader: "Activation map",
		Localised:   strings.Join(r.Localised, ", "),
	}
	if r.Model.Task == TaskVertebral {
		data.ImageHeader = "Region of interest"
	}
	if r.Model.Synthetic() {
		data.Warning = r.Model.Warning
	}
	for _, f := range r.Findings {
		row := reportRow{
			Region:      regionName(f),
			Finding:     findingName(f) + flaggedText(f),
			Probability: percent(f.Probability),
			Priority:    f.Priority,
			Status:      findingStatus(f),
		}
		if strings.HasPrefix(string(f.Heatmap), pngSignature) {
			// Safe as a URL: a fixed scheme and base64 characters only.
			row.Heatmap = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(f.Heatmap))
		}
		data.Rows = append(data.Rows, row)
	}
	var buf bytes.Buffer
	if err := reportPage.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render report HTML: %w", err)
	}
	return buf.Bytes(), nil
}

func findingStatus(f analysis.Finding) string {
	switch {
	case !f.Reported:
		return "below threshold"
	case f.LowConfidence:
		return "low confidence - needs review"
	case f.Normal:
		return "normal"
	default:
		return "reported"
	}
}

// Conclusion is the DiagnosticReport's plain-language conclusion: why
// the image was not read when the gate refused it, one sentence per finding with its region and probability, the suggested
// priority, a review note and the model's warning.
func Conclusion(r analysis.Result) string {
	var s []string
	if nr := r.NotRead; nr != nil && nr.Reason != analysis.ReasonNoVertebra { // that one's note says it
		s = append(s, fmt.Sprintf("Not read (%s): %s. No finding is given.", nr.Reason, nr.Text))
	}
	for _, f := range r.Findings {
		if !f.Reported {
			s = append(s, fmt.Sprintf("%s: no finding above threshold (most likely %s, %s%s).", titleCase(regionName(f)), lowerFirst(findingName(f)), percent(f.Probability), flaggedText(f)))
			continue
		}
		how := flaggedText(f)
		if f.Acuity != nil {
			how = ", " + f.Acuity.Method()
		}
		s = append(s, fmt.Sprintf("%s: %s (%s%s).", titleCase(regionName(f)), lowerFirst(findingName(f)), percent(f.Probability), how))
	}
	if r.Model.Task == TaskVertebral && len(r.Findings) == 0 && len(r.Localised) > 0 {
		s = append(s, fmt.Sprintf("No vertebral fracture found on %s-%s.", r.Localised[0], r.Localised[len(r.Localised)-1]))
	}
	s = append(s, r.Notes...)
	if r.Priority != "" {
		s = append(s, "Suggested read priority: "+strings.ToUpper(r.Priority)+".")
	}
	if r.Review {
		s = append(s, "Low confidence: needs review.")
	}
	if r.Model.Synthetic() && r.Model.Warning != "" {
		s = append(s, "Model warning: "+r.Model.Warning+".")
	}
	return strings.Join(s, " ")
}

// reportTitle names the exam the report reads.
func reportTitle(r analysis.Result) string {
	if r.Model.Task == TaskVertebral {
		return "AI triage: lateral spine radiograph, vertebral fracture acuity"
	}
	return "AI triage: AP pelvis radiograph, hips"
}

// flaggedText names the class that set a finding's priority when it is not
// the top class: "; possible fracture of neck of femur 35%".
func flaggedText(f analysis.Finding) string {
	fl := f.Flagged()
	if fl.Class == f.Class {
		return ""
	}
	return fmt.Sprintf("; possible %s %s", lowerFirst(className(fl)), percent(fl.Probability))
}

// className is a class's display, else its key.
func className(p analysis.ClassProbability) string {
	if p.Display != "" {
		return p.Display
	}
	return p.Class
}

// findingName is the finding's display, else its code's, else its class.
func findingName(f analysis.Finding) string {
	for _, s := range []string{f.Display, f.Code.Display, f.Class} {
		if s != "" {
			return s
		}
	}
	return "unnamed finding"
}

// regionName is "right hip" for a hip, "L1" for a vertebra.
func regionName(f analysis.Finding) string {
	if f.Laterality != "" && strings.HasSuffix(f.Region, "-hip") {
		return f.Laterality + " hip"
	}
	return f.Region
}
