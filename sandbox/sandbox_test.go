package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

const goodCard = `{"uuid":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d","summary":"Possible fracture","indicator":"critical","source":{"label":"orthotriage"}`

func TestCheckAnswer(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // substrings, one per problem, in order
	}{
		{"no guidance", `{"cards":[]}`, nil},
		{"a good card", `{"cards":[` + goodCard + `,"links":[{"label":"Report","url":"https://cds.example.org/r/1","type":"absolute"}]}]}`, nil},
		{"cards missing", `{}`, []string{"cards: required"}},
		{"not JSON", `{"cards":`, []string{"not JSON"}},
		{"null and empty values", `{"cards":[` + goodCard + `,"detail":"","links":[]}],"systemActions":null}`,
			[]string{`cards[0].detail: ""`, "cards[0].links: []", "systemActions: null"}},
		{"long summary", `{"cards":[{"uuid":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d","summary":"` + strings.Repeat("é", 140) + `","indicator":"info","source":{"label":"x"}}]}`,
			[]string{"140 characters"}},
		{"bad indicator, no source label, no uuid", `{"cards":[{"summary":"s","indicator":"hint","source":{"url":"https://x.org"}}]}`,
			[]string{"uuid: required", "indicator", "source.label"}},
		{"suggestions without selectionBehavior", `{"cards":[` + goodCard + `,"suggestions":[{"label":"Save","uuid":"u1","actions":[{"type":"create","resource":{"resourceType":"Task"}}]}]}]}`,
			[]string{"selectionBehavior"}},
		{"bad action and link", `{"cards":[` + goodCard + `,"selectionBehavior":"any","suggestions":[{"label":"Save","uuid":"u1","actions":[{"type":"upsert"}]}],"links":[{"label":"r","url":"/relative","type":"web"}]}]}`,
			[]string{"type: \"upsert\"", "links[0].type", "links[0].url"}},
		{"create without a resource", `{"cards":[],"systemActions":[{"type":"create","description":"x"}]}`, []string{"systemActions[0].resource"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got := CheckAnswer([]byte(tc.body))
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q, want %d like %q", got, len(tc.want), tc.want)
			}
			joined := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(joined, w) {
					t.Errorf("problems %q lack %q", got, w)
				}
			}
		})
	}
}

// fakeFHIR answers searches in pages of one entry with next links, reads
// of Patient/p1, 404 for other reads, and 500 for Condition searches.
func fakeFHIR(t *testing.T) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		switch {
		case r.URL.Path == "/fhir/Patient/p1":
			w.Write([]byte(`{"resourceType":"Patient","id":"p1"}`))
		case r.URL.Path == "/fhir/ImagingStudy":
			page := r.URL.Query().Get("page")
			next := map[string]string{"": "2", "2": "3"}[page]
			links := `[]`
			if next != "" {
				links = `[{"relation":"next","url":"` + srv.URL + `/fhir/ImagingStudy?page=` + next + `"}]`
			}
			if page == "3" && r.URL.Query().Get("escape") == "" {
				links = `[{"relation":"next","url":"https://elsewhere.example.org/fhir/ImagingStudy?page=4"}]`
			}
			w.Write([]byte(`{"resourceType":"Bundle","type":"searchset","link":` + links + `,"entry":[{"resource":{"resourceType":"ImagingStudy","id":"s` + page + `"}}]}`))
		case r.URL.Path == "/fhir/Condition":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"resourceType":"OperationOutcome"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPrefetcherFill(t *testing.T) {
	srv := fakeFHIR(t)
	p := &Prefetcher{FHIR: newFHIRClient(srv.URL+"/fhir", "", 5*time.Second)}
	templates := map[string]string{
		"patient":   "Patient/{{context.patientId}}",
		"gone":      "Patient/{{context.userId}}",
		"studies":   "ImagingStudy?patient=Patient/{{context.patientId}}",
		"history":   "Condition?patient={{context.patientId}}",
		"encounter": "Encounter/{{context.encounterId}}",
		"user":      "Practitioner/{{userPractitionerId}}",
	}
	got, keys := p.Fill(t.Context(), templates, map[string]any{"patientId": "p1", "userId": "nobody"}, "Practitioner/u1")
	states := map[string]string{}
	for _, k := range keys {
		states[k.Key] = k.State
	}
	want := map[string]string{"patient": PrefetchFilled, "gone": PrefetchNull, "studies": PrefetchFilled,
		"history": PrefetchMissing, "encounter": PrefetchMissing, "user": PrefetchNull}
	if d := cmp.Diff(want, states); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if _, ok := got["history"]; ok {
		t.Error("a failed search was sent; it must be left out")
	}
	if string(got["gone"]) != "null" {
		t.Errorf("a read that found nothing = %s, want null", got["gone"])
	}
	var bundle struct {
		Type  string
		Total int
		Entry []struct{ Resource struct{ ID string } }
		Link  []any
	}
	if err := json.Unmarshal(got["studies"], &bundle); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range bundle.Entry {
		ids = append(ids, e.Resource.ID)
	}
	// Three pages followed; the fourth's next link leaves the base.
	if d := cmp.Diff([]string{"s", "s2", "s3"}, ids); d != "" || bundle.Total != 3 || bundle.Type != "searchset" || bundle.Link != nil {
		t.Errorf("studies bundle %s (-want +got ids):\n%s", got["studies"], d)
	}
	for _, k := range keys {
		if k.Key == "studies" && (k.Pages != 3 || !strings.Contains(k.Reason, "outside the FHIR base")) {
			t.Errorf("studies key %+v", k)
		}
	}

	t.Run("max pages", func(t *testing.T) {
		p := &Prefetcher{FHIR: p.FHIR, MaxPages: 2}
		got, _ := p.Fill(t.Context(), map[string]string{"s": "ImagingStudy?x=1"}, nil, "")
		if !strings.Contains(string(got["s"]), `"total":2`) {
			t.Errorf("with 2 pages at most: %s", got["s"])
		}
	})
}

func TestKeySignsVerifiableJWTs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pem")
	k, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	again, created, err := LoadOrCreateKey(path)
	if err != nil || created || again.Kid != k.Kid {
		t.Fatalf("load: %v %v, kid %s vs %s", created, err, again.Kid, k.Kid)
	}
	tok, err := again.Sign("https://ehr.example.org", "https://cds.example.org/cds-services")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return &k.Private.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES384"}), jwt.WithAudience("https://cds.example.org/cds-services"), jwt.WithIssuedAt())
	if err != nil || parsed.Header["kid"] != k.Kid {
		t.Fatalf("verify: %v, header %v", err, parsed.Header)
	}
	var jwks struct{ Keys []map[string]string }
	if err := json.Unmarshal(k.JWKS(), &jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != k.Kid || jwks.Keys[0]["crv"] != "P-384" {
		t.Errorf("JWKS %s", k.JWKS())
	}
}

func TestPlanIsStable(t *testing.T) {
	a, b := NewPlan("", 4), NewPlan(DefaultPrefix, 4)
	if d := cmp.Diff(a, b); d != "" {
		t.Fatal(d)
	}
	seen := map[int]bool{}
	for _, p := range a.Patients {
		if seen[p.PelvisCase] {
			t.Errorf("pelvis case %d given twice: two patients would share a study", p.PelvisCase)
		}
		seen[p.PelvisCase] = true
	}
	if a.Patients[0].ID != "orthotriage-sandbox-1" || a.Patients[0].PelvisStudy != "orthotriage-sandbox-1-pelvis" {
		t.Errorf("ids %+v", a.Patients[0])
	}
}

// FuzzCheckAnswer: any answer a service sends is reported on, never a
// panic.
func FuzzCheckAnswer(f *testing.F) {
	f.Add([]byte(`{"cards":[]}`))
	f.Add([]byte(`{"cards":[` + goodCard + `,"suggestions":[{"label":"s","actions":[{"type":"create","resource":{"resourceType":"Task"}}]}]}]}`))
	f.Add([]byte(`{"cards":[{"links":[{"url":"%zz"}]}],"systemActions":[{"type":"delete"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, _ := CheckAnswer(body)
		_ = a.Resources()
	})
}
