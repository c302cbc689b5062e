package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSecretMasks(t *testing.T) {
	const value = "hunter2-token"
	s := Secret(value)
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("m", "secret", s)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("m", "secret", s)
	jsonBody, _ := json.Marshal(map[string]any{"secret": s, "pointer": &s})
	yamlBody, _ := yaml.Marshal(struct{ S Secret }{s})
	text, _ := s.MarshalText()
	tests := []struct{ name, got, want string }{
		{name: "String", got: s.String(), want: "[redacted]"},
		{name: "GoString", got: s.GoString(), want: `"[redacted]"`},
		{name: "%v", got: fmt.Sprintf("%v", s), want: "[redacted]"},
		{name: "%s", got: fmt.Sprintf("%s", s), want: "[redacted]"},
		{name: "%q", got: fmt.Sprintf("%q", s), want: `"[redacted]"`},
		{name: "%#v", got: fmt.Sprintf("%#v", s), want: `"[redacted]"`},
		{name: "%x", got: fmt.Sprintf("%x", s), want: fmt.Sprintf("%x", "[redacted]")},
		{name: "%12s", got: fmt.Sprintf("%12s", s), want: "  [redacted]"},
		{name: "pointer %v", got: fmt.Sprintf("%v", &s), want: "[redacted]"},
		{name: "in a struct %+v", got: fmt.Sprintf("%+v", struct{ S Secret }{s}), want: "{S:[redacted]}"},
		{name: "in a struct %#v", got: fmt.Sprintf("%#v", struct{ S Secret }{s}), want: `struct { S config.Secret }{S:"[redacted]"}`},
		{name: "JSON", got: string(jsonBody), want: `{"pointer":"[redacted]","secret":"[redacted]"}`},
		{name: "YAML", got: string(yamlBody), want: "s: '[redacted]'\n"},
		{name: "MarshalText", got: string(text), want: "[redacted]"},
		{name: "slog JSON", got: jsonLog.String(), want: `"secret":"[redacted]"`},
		{name: "slog text", got: textLog.String(), want: "secret=[redacted]"},
		{name: "Reveal", got: s.Reveal(), want: value},
		{name: "unset", got: fmt.Sprintf("%v|%s|%q", Secret(""), Secret(""), Secret("")), want: `||""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(tt.got, tt.want) {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
			if tt.name != "Reveal" && strings.Contains(tt.got, value) {
				t.Errorf("%q shows the secret", tt.got)
			}
		})
	}
}

// TestSecretLoads: a Secret setting loads from the YAML file, the
// environment and flags like a string setting, and a Secret in the
// credentials file from YAML.
func TestSecretLoads(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	creds := filepath.Join(dir, "creds.yaml")
	os.WriteFile(file, []byte("results:\n  link_secret: yaml-link-secret-of-32-characters\nredis:\n  url: redis://:yaml-pass@h:6379/0\n"), 0o600)
	os.WriteFile(creds, []byte("- base_url: https://pacs.example.org\n  username: u\n  password: 12345\n"), 0o600)
	c, err := Load("serve", append([]string{"--config", file, "--precompute-admin-token", "flag-admin-token-0123", "--imaging-credentials-file", creds}, serving...),
		env(map[string]string{"ORTHOTRIAGE_PRECOMPUTE_NOTIFICATION_TOKEN": "env-notification-token", "ORTHOTRIAGE_PRECOMPUTE_FHIR_SERVER": "https://fhir.example.org"}),
		&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		got  Secret
		want string
	}{
		{"yaml", c.Results.LinkSecret, "yaml-link-secret-of-32-characters"},
		{"yaml url", c.Redis.URL, "redis://:yaml-pass@h:6379/0"},
		{"env", c.Precompute.NotificationToken, "env-notification-token"},
		{"flag", c.Precompute.AdminToken, "flag-admin-token-0123"},
		{"credentials file, a YAML number", c.Imaging.Credentials[0].Password, "12345"},
	} {
		if tt.got.Reveal() != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got.Reveal(), tt.want)
		}
	}
}

// secretName is what makes a field's name or YAML key say it holds a
// secret.
var secretName = []string{"token", "secret", "password", "passwd", "credential", "key", "bearer"}

// notSecret are names that match secretName but hold no secret: a setting
// ending in _file is a path (the file, mounted from the deployment's
// Secret, holds the value); one ending in _url an endpoint (token_url).
func notSecret(tag string) bool {
	return strings.HasSuffix(tag, "_file") || strings.HasSuffix(tag, "_url")
}

// secretByContent are settings whose names do not say so but whose values
// may hold a secret: a Redis URL's user info holds its password.
var secretByContent = []string{"Redis.URL"}

var secretType = reflect.TypeFor[Secret]()

// visitFields calls visit for each field of t, at any depth: structs,
// pointers to them and slices of them are walked into.
func visitFields(t reflect.Type, path string, visit func(path string, f reflect.StructField)) {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		visitFields(t.Elem(), path, visit)
	case reflect.Struct:
		for _, f := range reflect.VisibleFields(t) {
			visit(path+f.Name, f)
			visitFields(f.Type, path+f.Name+".", visit)
		}
	}
}

// secretFields lists the Secret fields of Config by path (Imaging.Credentials.Token).
func secretFields() []string {
	var paths []string
	visitFields(reflect.TypeFor[Config](), "", func(path string, f reflect.StructField) {
		if leaf(f.Type) == secretType {
			paths = append(paths, path)
		}
	})
	return paths
}

// leaf is the element type under any pointers and slices.
func leaf(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

// TestEverySecretSettingIsSecret: a field of Config whose name or YAML key
// says it holds a token, secret, password, key or credentials, at any depth
// (the issuers and credentials files included), is a Secret, so it can never
// be printed or logged in clear.
func TestEverySecretSettingIsSecret(t *testing.T) {
	visitFields(reflect.TypeFor[Config](), "", func(path string, f reflect.StructField) {
		if l := leaf(f.Type); l == secretType || l.Kind() == reflect.Struct {
			return // a Secret, or walked into
		}
		tag := f.Tag.Get("yaml")
		name := strings.ToLower(f.Name + " " + tag)
		for _, word := range secretName {
			if strings.Contains(name, word) && !notSecret(tag) {
				t.Errorf("%s (yaml %q) looks like a secret: make it a config.Secret, not %s", path, tag, f.Type)
				return
			}
		}
		if slices.Contains(secretByContent, path) {
			t.Errorf("%s may hold credentials: make it a config.Secret, not %s", path, f.Type)
		}
	})
	if len(secretFields()) == 0 {
		t.Fatal("no Secret field found: the walk is broken")
	}
}

// populated returns a Config with every Secret set, in the issuers and
// credentials lists too, and the values that must never be shown by field
// path. Each holds a distinct marker as the password of a URL, so that a URL
// shown with only its password masked is covered too.
func populated(t *testing.T) (Config, map[string]string) {
	t.Helper()
	c := Default()
	c.Auth.Issuers = []TrustedIssuer{{Iss: "https://ehr.example.org", JWKSURL: "https://ehr.example.org/jwks",
		BackendServices: &BackendServices{TokenURL: "https://ehr.example.org/token", ClientID: "orthotriage", Scope: "system/*.rs"}}}
	c.Imaging.Credentials = []DICOMwebCredential{{BaseURL: "https://pacs.example.org"}, {BaseURL: "https://vna.example.org"}}
	markers := map[string]string{}
	var fill func(v reflect.Value, path string)
	fill = func(v reflect.Value, path string) {
		switch {
		case v.Type() == secretType:
			markers[path] = "s3cr3t-" + strings.ReplaceAll(path, ".", "-")
			v.SetString("redis://user:" + markers[path] + "@secret.example.org:6379/0")
		case v.Kind() == reflect.Pointer && !v.IsNil():
			fill(v.Elem(), path)
		case v.Kind() == reflect.Slice:
			for i := range v.Len() {
				fill(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				fill(v.Field(i), strings.TrimPrefix(path+"."+v.Type().Field(i).Name, "."))
			}
		}
	}
	fill(reflect.ValueOf(&c).Elem(), "")
	covered := map[string]bool{}
	for path := range markers {
		covered[indexes.ReplaceAllString(path, "")] = true
	}
	for _, f := range secretFields() {
		if !covered[f] {
			t.Fatalf("Secret %s not populated (have %v)", f, markers)
		}
	}
	return c, markers
}

// indexes matches the slice indexes of a value's path.
var indexes = regexp.MustCompile(`\[\d+\]`)

// TestConfigNeverShowsSecrets: a Config with every secret set, printed with
// fmt, encoded as JSON or YAML, logged through slog whole or as Redacted,
// shows none of them.
func TestConfigNeverShowsSecrets(t *testing.T) {
	c, markers := populated(t)
	if !strings.Contains(c.Imaging.Credentials[1].Password.Reveal(), markers["Imaging.Credentials[1].Password"]) {
		t.Fatalf("credentials not populated: %+v", markers)
	}
	var jsonLog, textLog bytes.Buffer
	jl, tl := slog.New(slog.NewJSONHandler(&jsonLog, nil)), slog.New(slog.NewTextHandler(&textLog, nil))
	for _, l := range []*slog.Logger{jl, tl} {
		l.Info("starting", "config", c, "pointer", &c, "redacted", c.Redacted())
	}
	jsonBody, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	yamlBody, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"pointer %+v": fmt.Sprintf("%+v", &c), "credentials %+v": fmt.Sprintf("%+v", c.Imaging.Credentials),
		"json": string(jsonBody), "yaml": string(yamlBody), "slog json": jsonLog.String(), "slog text": textLog.String(),
		"Redacted": fmt.Sprint(c.Redacted()),
	}
	for how, out := range shown {
		for path, marker := range markers {
			if strings.Contains(out, marker) {
				t.Errorf("%s shows %s:\n%s", how, path, out)
			}
		}
	}
	if r := c.Redacted()["redis.url"]; !strings.Contains(r, "secret.example.org") {
		t.Errorf("redis.url logged as %q: want the host, password masked", r)
	}
}
