package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage/internal/fhirschema"
	"github.com/orthotriage/orthotriage/sandbox"
)

const sandboxUsage = `orthotriage sandbox: the integration kit (seed a FHIR server and PACS, then play the EHR)

Usage:
  orthotriage sandbox seed  --fhir URL --dicomweb URL [--patients N] [--prefix P] [--fhir-token T]
                            [--endpoint-address URL] [--dicomweb-user U --dicomweb-password P | --dicomweb-token T] [--wait 5m]
  orthotriage sandbox keys  --key FILE [--jwks FILE] [--issuers FILE --iss ISS --fhir URL [--dicomweb URL]]
  orthotriage sandbox check --service URL --fhir URL --key FILE [--iss ISS] [--patients N] [--prefix P]
                            [--fhir-token T] [--notification-token T] [--schema FILE|none] [--strict] [--json]
`

// defaultIssuer is the kit's JWT iss unless --iss says otherwise.
const defaultIssuer = "https://ehr.sandbox.orthotriage.invalid"

func sandboxCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, sandboxUsage)
		return errors.New("sandbox: no subcommand (seed, keys or check)")
	}
	switch args[0] {
	case "seed":
		return sandboxSeed(ctx, args[1:], stdout, stderr)
	case "keys":
		return sandboxKeys(args[1:], stdout, stderr)
	case "check":
		return sandboxCheck(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, sandboxUsage)
		return nil
	}
	fmt.Fprint(stderr, sandboxUsage)
	return fmt.Errorf("sandbox: unknown subcommand %q", args[0])
}

func sandboxFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sandbox "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseSandbox parses a sandbox subcommand's flags; --help gives
// flag.ErrHelp, which main turns into exit status 0.
func parseSandbox(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

func sandboxSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := sandboxFlags("seed", stderr)
	var o sandbox.SeedOptions
	fs.StringVar(&o.FHIR, "fhir", "", "FHIR R4 base URL (required)")
	fs.StringVar(&o.FHIRToken, "fhir-token", "", "bearer token for the FHIR server")
	fs.StringVar(&o.DICOMweb, "dicomweb", "", "DICOMweb base URL of the PACS; STOW-RS at {base}/studies (required)")
	fs.StringVar(&o.EndpointAddress, "endpoint-address", "", "DICOMweb base as the service reaches it (the Endpoint's address); default --dicomweb")
	fs.StringVar(&o.DICOMwebUser, "dicomweb-user", "", "PACS user (HTTP basic)")
	fs.StringVar(&o.DICOMwebPassword, "dicomweb-password", "", "PACS password (HTTP basic)")
	fs.StringVar(&o.DICOMwebToken, "dicomweb-token", "", "PACS bearer token")
	fs.IntVar(&o.Patients, "patients", 2, "synthetic patients")
	fs.StringVar(&o.Prefix, "prefix", sandbox.DefaultPrefix, "start of every resource id")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "deadline of one request")
	fs.DurationVar(&o.Wait, "wait", 0, "wait up to this long for the FHIR server to answer /metadata (a server still starting)")
	if err := parseSandbox(fs, args); err != nil {
		return err
	}
	start := time.Now()
	plan, made, err := sandbox.Seed(ctx, o)
	for _, s := range made {
		fmt.Fprintf(stdout, "%-13s %-40s %s\n", s.Kind, s.ID, s.What)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d patients (%d resources and images) in %.1f s; check with: orthotriage sandbox check --fhir %s --patients %d --prefix %s ...\n",
		len(plan.Patients), len(made), time.Since(start).Seconds(), o.FHIR, len(plan.Patients), plan.Prefix)
	return nil
}

func sandboxKeys(args []string, stdout, stderr io.Writer) error {
	fs := sandboxFlags("keys", stderr)
	keyFile := fs.String("key", "", "PEM EC P-384 key; made when the file does not exist (required)")
	jwksFile := fs.String("jwks", "", "write the public JWKS here too")
	issuersFile := fs.String("issuers", "", "write an issuers file (auth.issuers_file) trusting the key here")
	iss := fs.String("iss", defaultIssuer, "the JWTs' iss")
	fhirURL := fs.String("fhir", "", "FHIR server the issuer may name (with --issuers)")
	dicomweb := fs.String("dicomweb", "", "DICOMweb base its studies are on (with --issuers)")
	if err := parseSandbox(fs, args); err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("sandbox keys: --key is required")
	}
	key, created, err := sandbox.LoadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "made a new ES384 key in %s (kid %s)\n", *keyFile, key.Kid)
	}
	if *jwksFile != "" {
		if err := os.WriteFile(*jwksFile, key.JWKS(), 0o644); err != nil {
			return fmt.Errorf("sandbox keys: %w", err)
		}
	}
	if *issuersFile != "" {
		if *jwksFile == "" || *fhirURL == "" {
			return errors.New("sandbox keys: --issuers needs --jwks and --fhir")
		}
		var bases []string
		if *dicomweb != "" {
			bases = []string{*dicomweb}
		}
		if err := os.WriteFile(*issuersFile, sandbox.IssuerEntry(*iss, *jwksFile, []string{*fhirURL}, bases), 0o644); err != nil {
			return fmt.Errorf("sandbox keys: %w", err)
		}
	}
	fmt.Fprintf(stdout, "%s\n", key.JWKS())
	return nil
}

func sandboxCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := sandboxFlags("check", stderr)
	var o sandbox.CheckOptions
	fs.StringVar(&o.Service, "service", "", "the service's base URL, as its auth.public_base_url (required)")
	fs.StringVar(&o.FHIR, "fhir", "", "FHIR R4 base URL the hooks name (required)")
	fs.StringVar(&o.FHIRToken, "fhir-token", "", "access token lent to the service (fhirAuthorization) and used by the kit")
	keyFile := fs.String("key", "", "PEM EC P-384 key signing the JWTs; made when the file does not exist (required)")
	fs.StringVar(&o.Issuer, "iss", defaultIssuer, "the JWTs' iss, as registered in the service's issuers file")
	fs.IntVar(&o.Patients, "patients", 2, "patients seeded (as given to seed)")
	fs.StringVar(&o.Prefix, "prefix", sandbox.DefaultPrefix, "id prefix (as given to seed)")
	fs.StringVar(&o.NotificationToken, "notification-token", "", "the service's precompute.notification_token: create a Subscription and check the precompute path")
	fs.DurationVar(&o.SubscriptionWait, "subscription-wait", 10*time.Second, "how long to wait for the FHIR server to deliver a notification")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "deadline of one request")
	fs.IntVar(&o.MaxPages, "max-pages", 5, "search pages followed when filling prefetch")
	schema := fs.String("schema", "", "FHIR R4 JSON schema (fhir.schema.json); default: the one `make setup` installs, if found; none: skip")
	fs.BoolVar(&o.Strict, "strict", false, "fail a resource on $validate warnings too")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseSandbox(fs, args); err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("sandbox check: --key is required")
	}
	key, created, err := sandbox.LoadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	o.Key = key
	verb := "uses"
	if created {
		verb = "made a new key; register"
	}
	fmt.Fprintf(stderr, "the kit %s issuer %s with this JWKS (an issuers-file entry's jwks_file):\n%s\n", verb, o.Issuer, key.JWKS())
	if path := *schema; path != "none" {
		if path == "" {
			path = fhirschema.Find()
		}
		if path != "" {
			if o.Schema, err = fhirschema.Load(path); err != nil {
				return fmt.Errorf("sandbox check: --schema: %w", err)
			}
		}
	}
	report, err := sandbox.Check(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if !report.OK() {
		var failed []string
		for _, r := range report.Results {
			if r.Status == sandbox.Fail {
				failed = append(failed, r.Name)
			}
		}
		b, _ := json.Marshal(failed)
		return fmt.Errorf("sandbox check: %d failed: %s", report.Failed, strings.Trim(string(b), "[]"))
	}
	return nil
}
