package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// serving are the settings serve needs besides the defaults.
var serving = []string{"--auth-public-base-url", "https://cds.example.org"}

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load("serve", serving, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("Load with only a public base URL: %v", err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Redis.URL != "" {
		t.Errorf("defaults: listen %q redis %q", c.Listen, c.Redis.URL)
	}
	for _, cmd := range []string{"version", "inspect", "analyze", "eval", "phantom"} {
		if _, err := Load(cmd, nil, env(nil), &bytes.Buffer{}); err != nil {
			t.Errorf("%s with no settings: %v", cmd, err)
		}
	}
	if _, err := Load("serve", nil, env(map[string]string{"ORTHOTRIAGE_AUTH_DISABLED": "true"}), &bytes.Buffer{}); err != nil {
		t.Errorf("serve with auth off and no public URL (the demo): %v", err)
	}
}

// TestPublicBaseURLRequiredWithAuth: the aud of tokens never comes from a
// request, so serving with authentication on and an issuer trusted needs the
// public URL. With no issuer trusted no token is accepted at all, and serve
// starts on its embedded defaults.
func TestPublicBaseURLRequiredWithAuth(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	issuers := filepath.Join(dir, "issuers.yaml")
	os.WriteFile(jwks, []byte(`{"keys":[]}`), 0o600)
	os.WriteFile(issuers, []byte("- iss: https://ehr.example.org\n  jwks_file: "+jwks+"\n"), 0o600)
	withIssuer := func(m map[string]string) map[string]string {
		m["ORTHOTRIAGE_AUTH_ISSUERS_FILE"] = issuers
		return m
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // empty: valid
	}{
		{name: "auth on, an issuer, no public URL", env: withIssuer(map[string]string{}), wantErr: "auth.public_base_url: required with CDS client authentication on"},
		{name: "auth on, an issuer, public URL from env", env: withIssuer(map[string]string{"ORTHOTRIAGE_AUTH_PUBLIC_BASE_URL": "https://cds.example.org"})},
		{name: "auth on, no issuer, no public URL (embedded defaults)", env: map[string]string{}},
		{name: "auth on, public URL not absolute", args: []string{"--auth-public-base-url", "cds.example.org"}, wantErr: "auth.public_base_url: want an absolute http(s) URL"},
		{name: "auth off, an issuer, no public URL", args: []string{"--auth-disabled"}, env: withIssuer(map[string]string{})},
		{name: "auth switched back on by a flag", args: []string{"--auth-disabled=false"}, env: withIssuer(map[string]string{"ORTHOTRIAGE_AUTH_DISABLED": "true"}),
			wantErr: "auth.public_base_url: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("serve", tt.args, env(tt.env), &bytes.Buffer{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestBooleanFlags: a boolean setting's flag works bare, as --name=true
// or --name=false, and beats the environment.
func TestBooleanFlags(t *testing.T) {
	tests := []struct {
		name                      string
		args                      []string
		env                       map[string]string
		wantDisabled, wantPrivate bool
		wantErr                   string
	}{
		{name: "bare", args: []string{"--auth-disabled"}, wantDisabled: true},
		{name: "two bare", args: []string{"--auth-disabled", "--egress-allow-private"}, wantDisabled: true, wantPrivate: true},
		{name: "single dash", args: []string{"-auth-disabled"}, wantDisabled: true},
		{name: "=true", args: []string{"--auth-disabled=true"}, wantDisabled: true},
		{name: "=false beats env", args: []string{"--auth-disabled=false", "--auth-public-base-url", "https://cds.example.org"},
			env: map[string]string{"ORTHOTRIAGE_AUTH_DISABLED": "true"}},
		{name: "bare beats env", args: []string{"--egress-allow-private"}, env: map[string]string{"ORTHOTRIAGE_EGRESS_ALLOW_PRIVATE": "false", "ORTHOTRIAGE_AUTH_DISABLED": "1"},
			wantDisabled: true, wantPrivate: true},
		{name: "bare, then a valued flag", args: []string{"--auth-disabled", "--listen", "127.0.0.1:9"}, wantDisabled: true},
		{name: "not a boolean", args: []string{"--auth-disabled=maybe"}, wantErr: "auth.disabled (flag --auth-disabled): not true or false"},
		{name: "value as a separate argument", args: []string{"--auth-disabled", "true"}, wantErr: `unexpected argument "true" (a boolean flag is given bare`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("serve", tt.args, env(tt.env), &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Auth.Disabled != tt.wantDisabled || c.Egress.AllowPrivate != tt.wantPrivate {
				t.Errorf("auth.disabled %v egress.allow_private %v, want %v %v", c.Auth.Disabled, c.Egress.AllowPrivate, tt.wantDisabled, tt.wantPrivate)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "listen: 127.0.0.1:9000\nfhir:\n  timeout: 2s\n  max_pages: 3\ncors:\n  allowed_origins: [https://a.example.org]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("serve", append([]string{"--config", file, "--fhir-max-pages", "7"}, serving...),
		env(map[string]string{"ORTHOTRIAGE_LISTEN": "127.0.0.1:9001", "ORTHOTRIAGE_FHIR_MAX_PAGES": "4"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9001" {
		t.Errorf("listen = %s: env must beat the file", c.Listen)
	}
	if c.FHIR.MaxPages != 7 {
		t.Errorf("fhir.max_pages = %d: the flag must beat env and file", c.FHIR.MaxPages)
	}
	if c.FHIR.Timeout != 2*time.Second {
		t.Errorf("fhir.timeout = %s: the file must beat the default", c.FHIR.Timeout)
	}
	if len(c.CORS.AllowedOrigins) != 1 || c.CORS.AllowedOrigins[0] != "https://a.example.org" {
		t.Errorf("cors.allowed_origins = %v", c.CORS.AllowedOrigins)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		yaml string
		want []string
	}{
		{name: "bad listen", args: []string{"--listen", "8080"}, want: []string{"listen: want host:port"}},
		{name: "bad level from env", env: map[string]string{"ORTHOTRIAGE_LOG_LEVEL": "loud"}, want: []string{"log_level"}},
		{name: "unparsable duration", env: map[string]string{"ORTHOTRIAGE_HTTP_REQUEST_TIMEOUT": "ten"}, want: []string{"http.request_timeout (env ORTHOTRIAGE_HTTP_REQUEST_TIMEOUT): not a duration"}},
		{name: "negative duration", args: []string{"--http-idle-timeout", "-1s"}, want: []string{"http.idle_timeout: must be a positive duration"}},
		{name: "fhir timeout too long", args: []string{"--fhir-timeout", "20s"}, want: []string{"fhir.timeout: must be shorter than http.request_timeout"}},
		{name: "bad origin", args: []string{"--cors-allowed-origins", "https://ok.example.org,ftp://x"}, want: []string{`cors.allowed_origins: "ftp://x"`}},
		{name: "bad redis url, password masked", args: []string{"--redis-url", "http://:hunter2@h:1"}, want: []string{"redis.url"}},
		{name: "two bad keys at once", args: []string{"--fhir-max-pages", "0", "--feedback-max-events", "0"}, want: []string{"fhir.max_pages", "feedback.max_events"}},
		{name: "unknown yaml key", yaml: "listen: 127.0.0.1:1\nredis:\n  uri: redis://x\n", want: []string{"field uri not found"}},
		{name: "unknown flag", args: []string{"--lisen", "x"}, want: []string{"flag provided but not defined: -lisen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.yaml != "" {
				file := filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append([]string{"--config", file}, args...)
			}
			_, err := Load("serve", args, env(tt.env), &bytes.Buffer{})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := Load("serve", []string{"--help"}, env(nil), &out)
	if err != ErrHelp {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	c := Default()
	for _, s := range c.settings() {
		for _, want := range []string{"--" + s.flag(), s.env(), "key " + s.key} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("help lacks %q", want)
			}
		}
	}
}

func TestRedactedMasksSecrets(t *testing.T) {
	c := Default()
	c.Redis.URL = "redis://user:hunter2@redis.example.org:6379/0"
	r := c.Redacted()
	if strings.Contains(r["redis.url"], "hunter2") || !strings.Contains(r["redis.url"], "redis.example.org") {
		t.Errorf("redis.url logged as %q", r["redis.url"])
	}
}

func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	for _, s := range c.settings() {
		row := "| `" + s.key + "` | `" + s.env() + "` | `--" + s.flag() + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("docs/configuration.md's settings table lacks the row for %s (%s)", s.key, row)
		}
	}
}

func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("- base_url: https://pacs.example.org/dicom-web\n  username: u\n  password: hunter2\n- base_url: https://vna.example.org\n  token: t\n"), 0o600)
	c, err := Load("serve", append([]string{"--imaging-credentials-file", good}, serving...), env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Imaging.Credentials) != 2 || c.Imaging.Credentials[1].Token != "t" {
		t.Errorf("credentials = %+v", c.Imaging.Credentials)
	}
	if r := c.Redacted(); strings.Contains(fmt.Sprint(r), "hunter2") {
		t.Errorf("a password reached the logged configuration: %v", r)
	}
	for name, content := range map[string]string{
		"both token and user": "- base_url: https://pacs.example.org\n  token: t\n  username: u\n",
		"relative base":       "- base_url: /dicom-web\n  token: t\n",
		"unknown key":         "- base_url: https://pacs.example.org\n  tokn: t\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		os.WriteFile(path, []byte(content), 0o600)
		_, err := Load("serve", []string{"--imaging-credentials-file", path}, env(nil), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "credentials_file") {
			t.Errorf("%s: error %v, want one naming imaging.credentials_file", name, err)
		}
	}
}
