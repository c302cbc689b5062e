package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/config"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"
)

const chartDir = "helm/orthotriage"

// object is one rendered manifest, decoded strictly into its API type.
type object struct {
	file, kind, name string
	value            any
}

// newTyped returns a pointer to the Go API type of apiVersion and kind,
// or nil for a kind the chart must not render.
func newTyped(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	}
	return nil
}

// render renders the chart with Helm's engine (strict: a missing value is
// an error) for the values file (none: the chart's defaults) and decodes
// every object strictly: an unknown field anywhere is an error.
func render(t *testing.T, valuesFile string) map[string]object {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals := chartutil.Values{}
	if valuesFile != "" {
		if vals, err = chartutil.ReadValuesFile(valuesFile); err != nil {
			t.Fatal(err)
		}
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		t.Fatal(err)
	}
	opts := chartutil.ReleaseOptions{Name: "orthotriage", Namespace: "clinical", Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Engine{Strict: true}.Render(ch, rv)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	objects := map[string]object{}
	for _, f := range names {
		if !strings.HasSuffix(f, ".yaml") {
			continue // NOTES.txt, helpers
		}
		for i, doc := range strings.Split(files[f], "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			js, err := sigsyaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatalf("%s (document %d): not YAML: %v\n%s", f, i, err, doc)
			}
			if string(js) == "null" {
				continue
			}
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct{ Name string }
			}
			if err := json.Unmarshal(js, &head); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			v := newTyped(head.APIVersion, head.Kind)
			if v == nil {
				t.Fatalf("%s: unexpected %s %s", f, head.APIVersion, head.Kind)
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("%s: %s %s does not match the API type: %v\n%s", f, head.APIVersion, head.Kind, err, doc)
			}
			if head.Metadata.Name == "" {
				t.Errorf("%s: %s without a name", f, head.Kind)
			}
			key := head.Kind
			if _, dup := objects[key]; dup {
				t.Fatalf("%s: a second %s", f, head.Kind)
			}
			objects[key] = object{file: f, kind: head.Kind, name: head.Metadata.Name, value: v}
		}
	}
	return objects
}

func TestChartRendersAndValidates(t *testing.T) {
	tests := []struct {
		name   string
		values string
		kinds  []string
	}{
		{"defaults", "", []string{"ConfigMap", "Deployment", "Secret", "Service", "ServiceAccount"}},
		{"production-like", filepath.Join(chartDir, "ci", "production-values.yaml"),
			[]string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule", "Secret", "Service", "ServiceAccount", "ServiceMonitor"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.values)
			var kinds []string
			for k := range objs {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			if !slices.Equal(kinds, tc.kinds) {
				t.Fatalf("kinds = %v, want %v", kinds, tc.kinds)
			}
			d := objs["Deployment"].value.(*appsv1.Deployment)
			checkDeployment(t, d)
			pod := d.Spec.Template.Labels
			svc := objs["Service"].value.(*corev1.Service)
			if !selects(svc.Spec.Selector, pod) || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") {
				t.Errorf("Service selector %v or target port %v does not reach the pods %v", svc.Spec.Selector, svc.Spec.Ports[0].TargetPort, pod)
			}
			checkConfig(t, objs)
			if o, ok := objs["HorizontalPodAutoscaler"]; ok {
				h := o.value.(*autoscalingv2.HorizontalPodAutoscaler)
				if h.Spec.ScaleTargetRef.Name != d.Name || h.Spec.ScaleTargetRef.Kind != "Deployment" || d.Spec.Replicas != nil {
					t.Errorf("HPA targets %+v; Deployment replicas %v (must be left to the HPA)", h.Spec.ScaleTargetRef, d.Spec.Replicas)
				}
			}
			if o, ok := objs["PodDisruptionBudget"]; ok {
				p := o.value.(*policyv1.PodDisruptionBudget)
				if !selects(p.Spec.Selector.MatchLabels, pod) {
					t.Errorf("PDB selector %v misses the pods", p.Spec.Selector.MatchLabels)
				}
			}
			if o, ok := objs["NetworkPolicy"]; ok {
				checkNetworkPolicy(t, o.value.(*networkingv1.NetworkPolicy), pod)
			}
			if o, ok := objs["ServiceMonitor"]; ok {
				sm := o.value.(*monitoringv1.ServiceMonitor)
				if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) || sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.Endpoints[0].Port != "http" {
					t.Errorf("ServiceMonitor %+v does not scrape the Service's /metrics", sm.Spec)
				}
			}
			if o, ok := objs["PrometheusRule"]; ok {
				checkRules(t, o.value.(*monitoringv1.PrometheusRule))
			}
		})
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Error("pod securityContext: runAsNonRoot not set")
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it does not need")
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v: want read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	for name, p := range map[string]*corev1.Probe{"startup /healthz": c.StartupProbe, "liveness /healthz": c.LivenessProbe, "readiness /readyz": c.ReadinessProbe} {
		want := strings.Fields(name)[1]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("%s probe: %+v", name, p)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" {
		t.Errorf("ports %+v", c.Ports)
	}
}

// checkConfig loads the ConfigMap's orthotriage.yaml with the service's own
// config.Load, strict as at start, with the Secret's files and the
// Deployment's environment: the chart must give a configuration the
// service accepts.
func checkConfig(t *testing.T, objs map[string]object) {
	t.Helper()
	cm := objs["ConfigMap"].value.(*corev1.ConfigMap)
	secret := objs["Secret"].value.(*corev1.Secret)
	d := objs["Deployment"].value.(*appsv1.Deployment)
	dir := t.TempDir()
	mounts := map[string]string{}
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.Name == "config" || m.Name == "secrets" {
			mounts[m.Name] = m.MountPath
		}
	}
	// The mounted paths, moved under dir.
	relocate := func(s string) string {
		for _, p := range mounts {
			s = strings.ReplaceAll(s, p+"/", filepath.Join(dir, p)+"/")
		}
		return s
	}
	write := func(path, content string) {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(relocate(content)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range cm.Data {
		write(filepath.Join(mounts["config"], k), v)
	}
	for k, v := range secret.StringData {
		write(filepath.Join(mounts["secrets"], k), v)
	}
	env := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			if e.ValueFrom.SecretKeyRef.Name != secret.Name {
				t.Errorf("env %s from secret %s, want %s", e.Name, e.ValueFrom.SecretKeyRef.Name, secret.Name)
			}
			env[e.Name] = secret.StringData[e.ValueFrom.SecretKeyRef.Key]
		default:
			env[e.Name] = relocate(e.Value)
		}
	}
	var stderr bytes.Buffer
	cfg, err := config.Load("serve", nil, func(k string) string { return env[k] }, &stderr)
	if err != nil {
		t.Fatalf("the chart's configuration is refused by the service: %v\n%s\n%s", err, cm.Data["orthotriage.yaml"], stderr.String())
	}
	if cfg.Listen != fmt.Sprintf("0.0.0.0:%d", d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort) {
		t.Errorf("listen %q does not match the container port", cfg.Listen)
	}
	if len(secret.StringData["issuers.yaml"]) > 0 && len(cfg.Auth.Issuers) == 0 {
		t.Error("issuers given, none loaded")
	}
}

func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy, pod map[string]string) {
	t.Helper()
	if !selects(np.Spec.PodSelector.MatchLabels, pod) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Fatalf("NetworkPolicy %+v does not restrict the pods' egress", np.Spec)
	}
	dns := false
	for i, r := range np.Spec.Egress {
		if len(r.To) == 0 || len(r.Ports) == 0 {
			t.Errorf("egress rule %d allows any destination or port: %+v", i, r)
		}
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.IntValue() == 53 {
				dns = true
			}
		}
	}
	if !dns || len(np.Spec.Egress) != 4 {
		t.Errorf("egress %+v: want DNS, FHIR servers, PACS and Redis", np.Spec.Egress)
	}
}

// metricName finds the metric names an expression reads.
var metricName = regexp.MustCompile(`\b(orthotriage_[a-z_]+|up)\b`)

// knownMetrics are the series the service exports (api/router.go,
// cmd/orthotriage/main.go), histograms with their _bucket series.
var knownMetrics = []string{
	"up", "orthotriage_http_requests_total", "orthotriage_http_request_duration_seconds_bucket",
	"orthotriage_cds_feedback_total", "orthotriage_card_feedback_total", "orthotriage_analyses_total",
	"orthotriage_result_cache_hits_total", "orthotriage_result_cache_misses_total", "orthotriage_result_store_errors_total",
	"orthotriage_result_store_outages_total", "orthotriage_study_lock_bypassed_total", "orthotriage_precompute_jobs_total",
	"orthotriage_inference_batches_total", "orthotriage_inference_crops_total",
}

// checkRules checks the shipped alert rules: each has a severity, a
// summary and a runbook anchor that docs/operations.md has, and reads
// only metrics the service exports.
func checkRules(t *testing.T, pr *monitoringv1.PrometheusRule) {
	t.Helper()
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr.String() == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: alert, expr, severity and summary required", r)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook"], "docs/operations.md#")
			if !ok || !bytes.Contains(bytes.ToLower(ops), []byte("### "+strings.ToLower(r.Alert))) || anchor != strings.ToLower(r.Alert) {
				t.Errorf("alert %s: runbook %q has no section `### %s` in docs/operations.md", r.Alert, r.Annotations["runbook"], r.Alert)
			}
			for _, m := range metricName.FindAllString(r.Expr.String(), -1) {
				if !slices.Contains(knownMetrics, m) {
					t.Errorf("alert %s reads %s, which the service does not export", r.Alert, m)
				}
			}
		}
	}
	if n < 5 {
		t.Errorf("%d alert rules", n)
	}
	// The same file is a plain Prometheus rule file too.
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "orthotriage-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Errorf("alert rules file: %v", err)
	}
}
