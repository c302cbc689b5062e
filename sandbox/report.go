package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Statuses of one check. A warning does not fail the run.
const (
	Pass = "pass"
	Fail = "fail"
	Warn = "warn"
	Skip = "skip"
)

// Result is one check's outcome.
type Result struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"-"`
	Millis   int64         `json:"ms"`
}

// Report is every check of a run, in order.
type Report struct {
	Service string   `json:"service"`
	FHIR    string   `json:"fhirServer"`
	Results []Result `json:"checks"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Warned  int      `json:"warned"`
	Skipped int      `json:"skipped"`
}

// OK reports whether no check failed.
func (r *Report) OK() bool { return r.Failed == 0 }

func (r *Report) add(res Result) {
	res.Millis = res.Duration.Milliseconds()
	switch res.Status {
	case Pass:
		r.Passed++
	case Fail:
		r.Failed++
	case Warn:
		r.Warned++
	default:
		r.Skipped++
	}
	r.Results = append(r.Results, res)
}

// run times one check; f returns its status and detail.
func (r *Report) run(name string, f func() (string, string)) string {
	start := time.Now()
	status, detail := f()
	r.add(Result{Name: name, Status: status, Detail: detail, Duration: time.Since(start)})
	return status
}

// WriteTable prints the checks as an aligned table and a closing line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tTIME\tDETAIL")
	for _, res := range r.Results {
		detail := strings.ReplaceAll(res.Detail, "\n", "; ")
		if len(detail) > 160 && res.Status == Pass {
			detail = detail[:157] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ToUpper(res.Status), res.Name, formatDuration(res.Duration), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nsandbox check: %d passed, %d failed, %d warned, %d skipped\n", r.Passed, r.Failed, r.Warned, r.Skipped)
	return err
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
