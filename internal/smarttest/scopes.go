package smarttest

import (
	"slices"
	"strings"
)

// contextScopes are the scopes other than resource scopes that the server
// grants when asked; any other such scope is left out of the grant.
var contextScopes = []string{"openid", "fhirUser", "launch", "launch/patient", "launch/encounter"}

// rule is one resource scope: patient/Observation.rs lets the token read and
// search Observations in its patient's compartment, user/*.cruds lets it do
// anything to any resource the clinician may see.
type rule struct {
	patient bool   // patient/ (bound to the token's patient), else user/
	typ     string // a resource type, or "*"
	perms   string // letters of "cruds", in that order
}

// grant is what an authorization code carries and its access token inherits:
// the scopes as granted and the launch context.
type grant struct {
	scopes     []string // the granted scopes, in the order asked for
	rules      []rule
	launched   bool   // an EHR launch: the authorize request named a launch id
	patient    string // the patient id of the launch or of Token; "" without one
	encounter  string
	appContext string
}

// newGrant keeps the scopes of the space-separated list that the server
// understands (contextScopes and resource scopes, see parseRule), once
// each, and returns the rest as unknown.
func newGrant(scope string) (g grant, unknown []string) {
	for _, s := range strings.Fields(scope) {
		if slices.Contains(g.scopes, s) {
			continue
		}
		if r, ok := parseRule(s); ok {
			g.rules = append(g.rules, r)
		} else if !slices.Contains(contextScopes, s) {
			unknown = append(unknown, s)
			continue
		}
		g.scopes = append(g.scopes, s)
	}
	return g, unknown
}

// has reports whether scope was granted.
func (g *grant) has(scope string) bool { return slices.Contains(g.scopes, scope) }

// allows reports whether some scope grants any of the interactions perms
// (letters of "cruds") on resources of type typ, and whether every such
// scope is a patient/ one, so the resources must lie in the patient's
// compartment. A user/ scope wins over a patient/ one; a type outside the
// Patient compartment (an Endpoint, say) has no compartment to lie in.
func (g *grant) allows(typ, perms string) (ok, compartment bool) {
	for _, r := range g.rules {
		if (r.typ != "*" && r.typ != typ) || !strings.ContainsAny(r.perms, perms) {
			continue
		}
		if !r.patient {
			return true, false
		}
		ok, compartment = true, !slices.Contains(outsideCompartment, typ)
	}
	return ok, compartment
}

// outsideCompartment are resource types that the FHIR R4 Patient
// compartment does not hold: a patient/ scope on them reads any.
var outsideCompartment = []string{"Endpoint", "Device", "Organization", "Practitioner", "PractitionerRole",
	"Location", "HealthcareService", "Medication", "Substance"}

// parseRule parses a SMART resource scope: v2 "patient/ImagingStudy.rs",
// "user/*.cruds", or v1 "patient/Observation.read" (read and search),
// ".write" (create, update, delete) and ".*" (all). Granular v2 scopes with a
// query ("patient/Observation.rs?category=...") and system/ scopes are not
// understood.
func parseRule(s string) (rule, bool) {
	level, rest, ok := strings.Cut(s, "/")
	if !ok || (level != "patient" && level != "user") {
		return rule{}, false
	}
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok || (typ != "*" && !isResourceType(typ)) {
		return rule{}, false
	}
	perms, ok := permissions(perm)
	if !ok {
		return rule{}, false
	}
	return rule{patient: level == "patient", typ: typ, perms: perms}, true
}

// permissions turns a scope's permission part into letters of "cruds".
func permissions(p string) (string, bool) {
	switch p {
	case "read":
		return "rs", true
	case "write":
		return "cud", true
	case "*":
		return "cruds", true
	case "":
		return "", false
	}
	// v2: letters of "cruds", in that order, each at most once.
	rest := "cruds"
	for _, c := range p {
		i := strings.IndexRune(rest, c)
		if i < 0 {
			return "", false
		}
		rest = rest[i+1:]
	}
	return p, true
}

// isResourceType reports whether s looks like a FHIR resource type name.
func isResourceType(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}
