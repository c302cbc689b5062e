package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

// TestHooksNoteTheWorklist: a hook's study, once read, is on the worklist
// of the hook's FHIR server, kept in this process by default and in Redis
// with redis.url set.
func TestHooksNoteTheWorklist(t *testing.T) {
	const fnf = 13 // phantom case of seed 3: a femoral neck fracture
	tests := []struct {
		name  string
		redis bool
		store string
	}{
		{"embedded", false, "*store.MemoryWorklist"},
		{"redis", true, "*store.RedisWorklist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, images := newPACS(t, map[int]bool{fnf: false})
			e := newEHR(t)
			e.studies["fnf"] = imagingStudy("fnf", p.URL, images[fnf])
			cfg := testConfig(t)
			if tc.redis {
				cfg.Redis.URL = config.Secret(testenv.Redis(t))
			}
			s := start(t, cfg, nil)
			if got := fmt.Sprintf("%T", s.app.worklist); got != tc.store {
				t.Fatalf("worklist %s, want %s", got, tc.store)
			}
			status, body := post(t, s.base+"/cds-services/hip-radiograph-screening-imagingstudy-available", `{"hook":"org.orthotriage.imagingstudy-available",`+
				`"hookInstance":"h","fhirServer":"`+e.URL+`","fhirAuthorization":{"access_token":"t","token_type":"Bearer","expires_in":300,"scope":"patient/*.read","subject":"ehr"},`+
				`"context":{"patientId":"p1","studies":["ImagingStudy/fnf"]}}`)
			if status != 200 || !strings.Contains(body, `"indicator":"critical"`) {
				t.Fatalf("hook = %d %s\n%s", status, body, s.logs)
			}
			items, err := s.app.worklist.List(t.Context(), "", e.URL, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 {
				t.Fatalf("worklist %+v, want the study read", items)
			}
			it := items[0]
			if it.ImagingStudy != "ImagingStudy/fnf" || it.Status != analysis.WorkAIRead || it.Priority != "stat" || it.Top == nil ||
				!strings.HasPrefix(it.Model, "hip-000@") || it.Modality != images[fnf].Modality || it.BodyPart != "PELVIS" || it.Started != "2026-11-20T08:00:00Z" {
				t.Errorf("worklist item %+v", it)
			}
		})
	}
}
