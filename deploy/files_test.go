package deploy

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/orthotriage/orthotriage/config"
)

// settingsHelp is `orthotriage serve --help`: every setting's env name.
func settingsHelp(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	if _, err := config.Load("serve", []string{"--help"}, func(string) string { return "" }, &out); err == nil {
		t.Fatal("serve --help did not stop")
	}
	return out.String()
}

var envName = regexp.MustCompile(`^ORTHOTRIAGE_[A-Z0-9_]+$`)

// TestDockerfile parses the image's Dockerfile with BuildKit's own parser
// (syntax and every instruction's arguments) and checks what the image
// promises: multi-stage, a non-root user, a health check on /healthz,
// exec-form entry point (no shell needed), version and commit labels, and
// the ONNX Runtime library from the same source as `make setup`.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile warning: %s", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("instructions: %v", err)
	}
	if len(stages) < 2 || len(metaArgs) == 0 {
		t.Fatalf("%d stages, %d global ARGs: want a multi-stage build with the base images as arguments", len(stages), len(metaArgs))
	}
	final := stages[len(stages)-1]
	var user string
	var health *instructions.HealthCheckCommand
	var entry *instructions.EntrypointCommand
	labels := map[string]string{}
	envs := map[string]string{}
	copiedFromBuild := false
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.HealthCheckCommand:
			health = c
		case *instructions.EntrypointCommand:
			entry = c
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				labels[kv.Key] = kv.Value
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				envs[kv.Key] = kv.Value
			}
		case *instructions.CopyCommand:
			copiedFromBuild = copiedFromBuild || c.From == stages[0].Name
		}
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	if health == nil || !slices.ContainsFunc(health.Health.Test, func(s string) bool { return strings.Contains(s, "/healthz") }) || health.Health.Test[0] != "CMD" {
		t.Errorf("HEALTHCHECK %+v: want an exec-form check of /healthz", health)
	}
	if entry == nil || entry.PrependShell {
		t.Errorf("ENTRYPOINT %+v: want exec form (no shell at run time)", entry)
	}
	for _, l := range []string{"org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if labels[l] == "" {
			t.Errorf("no label %s", l)
		}
	}
	if !copiedFromBuild {
		t.Error("the final stage copies nothing from the build stage")
	}
	help := settingsHelp(t)
	for k := range envs {
		if envName.MatchString(k) && !strings.Contains(help, k) {
			t.Errorf("ENV %s is not a setting of the service", k)
		}
	}
	if !strings.Contains(string(b), "scripts/setup.sh ort") {
		t.Error("the ONNX Runtime library does not come from scripts/setup.sh ort (the source `make setup` uses)")
	}
	checkCodecPackages(t, stages)
}

// debPackage finds Debian package names in an apt_install line.
var debPackage = regexp.MustCompile(`\blib[a-z0-9][a-z0-9.+-]*`)

// setupPart matches the start of a part in scripts/setup.sh's case.
var setupPart = regexp.MustCompile(`^\s+([a-z0-9]+)\)$`)

// checkCodecPackages: the image installs the same Debian libraries as
// `make setup` (scripts/setup.sh): each -dev library by running the
// script's part that installs it (or naming it) in the build stage, and
// its run-time package (same name without -dev, or with a soname version)
// in the runtime stage; any other library package (not -tools) in the
// runtime stage. So the image links and decodes what the tests do.
func checkCodecPackages(t *testing.T, stages []instructions.Stage) {
	t.Helper()
	setup, err := os.ReadFile("../scripts/setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	runs := func(st instructions.Stage) string {
		var all []string
		for _, cmd := range st.Commands {
			if r, ok := cmd.(*instructions.RunCommand); ok {
				all = append(all, strings.Join(r.CmdLine, " "))
			}
		}
		return " " + strings.Join(all, " ") + " "
	}
	build, runtime := runs(stages[0]), runs(stages[len(stages)-1])
	setupArgs := regexp.MustCompile(`scripts/setup\.sh((?: [a-z0-9]+)+)`).FindStringSubmatch(build)
	part := ""
	for _, line := range strings.Split(string(setup), "\n") {
		if m := setupPart.FindStringSubmatch(line); m != nil {
			part = m[1]
		}
		if !strings.Contains(line, "apt_install ") || strings.Contains(line, "apt_install()") {
			continue
		}
		for _, pkg := range debPackage.FindAllString(line, -1) {
			switch {
			case strings.HasSuffix(pkg, "-tools"):
			case strings.HasSuffix(pkg, "-dev"):
				viaSetup := setupArgs != nil && slices.Contains(strings.Fields(setupArgs[1]), part)
				if !viaSetup && !strings.Contains(build, " "+pkg+" ") {
					t.Errorf("scripts/setup.sh %s installs %s; the Dockerfile's build stage neither runs that part nor installs it", part, pkg)
				}
				if !strings.Contains(runtime, " "+strings.TrimSuffix(pkg, "-dev")) {
					t.Errorf("scripts/setup.sh %s installs %s; the Dockerfile's runtime stage installs no %s* library", part, pkg, strings.TrimSuffix(pkg, "-dev"))
				}
			default:
				if !strings.Contains(runtime, " "+pkg+" ") {
					t.Errorf("scripts/setup.sh %s installs %s; the Dockerfile's runtime stage does not", part, pkg)
				}
			}
		}
	}
}

// TestCompose loads compose.yaml with the Compose Specification's own
// loader (schema-validated, interpolated) and checks the wiring: the
// sandbox's servers, orthotriage hardened and pointed at them, every
// ORTHOTRIAGE_ variable a real setting, and the kit's steps in order.
func TestCompose(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{WorkingDir: ".", ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: b}}, Environment: types.Mapping{}}
	p, err := loader.LoadWithContext(t.Context(), details)
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	all := map[string]types.ServiceConfig{}
	for name, s := range p.Services {
		all[name] = s
	}
	for name, s := range p.DisabledServices {
		all[name] = s
	}
	for _, want := range []string{"hapi", "orthanc", "redis", "keys", "orthotriage", "seed", "check"} {
		if _, ok := all[want]; !ok {
			t.Fatalf("no service %s", want)
		}
	}
	if env := all["hapi"].Environment["hapi.fhir.subscription.resthook_enabled"]; env == nil || *env != "true" {
		t.Error("HAPI without rest-hook subscriptions")
	}
	ot := all["orthotriage"]
	if !ot.ReadOnly || !slices.Contains(ot.CapDrop, "ALL") || len(ot.Tmpfs) == 0 || ot.Build == nil || ot.Build.Dockerfile != "deploy/Dockerfile" {
		t.Errorf("orthotriage: read_only %v, cap_drop %v, tmpfs %v, build %+v", ot.ReadOnly, ot.CapDrop, ot.Tmpfs, ot.Build)
	}
	if d, ok := ot.DependsOn["keys"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("orthotriage starts before the kit wrote the issuers file: %+v", ot.DependsOn)
	}
	help := settingsHelp(t)
	for k, v := range ot.Environment {
		if !envName.MatchString(k) || !strings.Contains(help, k) {
			t.Errorf("orthotriage environment %s is not a setting of the service", k)
		}
		if v == nil || *v == "" {
			t.Errorf("orthotriage environment %s has no value", k)
		}
	}
	for name, wantSub := range map[string]string{"keys": "keys", "seed": "seed", "check": "check"} {
		cmd := all[name].Command
		if len(cmd) < 2 || cmd[0] != "sandbox" || cmd[1] != wantSub {
			t.Errorf("%s runs %v, want sandbox %s", name, cmd, wantSub)
		}
	}
	if d := all["check"].DependsOn; d["seed"].Condition != types.ServiceConditionCompletedSuccessfully || d["orthotriage"].Condition != types.ServiceConditionHealthy {
		t.Errorf("check depends on %+v", d)
	}
	// The URL the kit calls must be the service's public base URL (the
	// JWTs' aud), and the kit's notification token the service's.
	check := strings.Join(all["check"].Command, " ")
	if base := *ot.Environment["ORTHOTRIAGE_AUTH_PUBLIC_BASE_URL"]; !strings.Contains(check, "--service "+base+" ") {
		t.Errorf("check calls %q, the service expects aud under %s", check, base)
	}
	if tok := *ot.Environment["ORTHOTRIAGE_PRECOMPUTE_NOTIFICATION_TOKEN"]; !strings.HasSuffix(check, "--notification-token "+tok) {
		t.Errorf("check's notification token differs from the service's")
	}
}
