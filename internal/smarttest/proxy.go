package smarttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage/internal/urlx"
)

// maxBody bounds request and upstream response bodies.
const maxBody = 32 << 20

// refusal is an answer the proxy gives instead of forwarding: its status,
// OperationOutcome issue code and diagnostics.
type refusal struct {
	status int
	code   string
	text   string
}

func forbidden(format string, args ...any) *refusal {
	return &refusal{http.StatusForbidden, "forbidden", fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *refusal {
	return &refusal{http.StatusBadRequest, "invalid", fmt.Sprintf(format, args...)}
}

// serveFHIR is the FHIR proxy: it forwards what the request's access token
// allows to the upstream, with the upstream's token in its place.
//
// Interactions it authorizes: read and vread (Type/id[/_history/v]),
// search by GET (Type?...), create (POST Type), update (PUT Type/id; an
// upsert, so u or c will do), delete (DELETE Type/id), and batch and
// transaction Bundles POSTed to the base, each entry a POST, PUT or DELETE
// checked as such. Anything else (operations, history, conditional
// interactions, PATCH, whole-system search) is refused.
func (s *Server) serveFHIR(w http.ResponseWriter, r *http.Request) {
	g, ok := s.bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		s.outcome(w, &refusal{http.StatusUnauthorized, "login", "a valid bearer token issued by this server is required"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.outcome(w, invalid("body: unreadable or over %d bytes", maxBody))
		return
	}
	rel := strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), fhirPath), "/")
	segs, err := segments(rel)
	if err != nil {
		s.outcome(w, invalid("path: %v", err))
		return
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.outcome(w, invalid("query: %v", err))
		return
	}
	checkRead, no := s.check(r.Context(), &g, r.Method, segs, query, body)
	if no != nil {
		s.outcome(w, no)
		return
	}
	resp, err := s.forward(r, body)
	if err != nil {
		s.outcome(w, &refusal{http.StatusBadGateway, "transient", "upstream: " + urlx.WithoutURL(err).Error()})
		return
	}
	if checkRead && resp.status == http.StatusOK {
		if res, err := parseResource(resp.body); err != nil || !inCompartment(res, g.patient) {
			s.outcome(w, forbidden("the resource is not in the compartment of the token's patient"))
			return
		}
	}
	resp.write(w)
}

// segments splits an escaped relative path into its decoded segments, none
// for "".
func segments(rel string) ([]string, error) {
	if rel == "" {
		return nil, nil
	}
	segs := strings.Split(rel, "/")
	for i, seg := range segs {
		var err error
		if segs[i], err = url.PathUnescape(seg); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// check decides whether the token g may make the request. checkRead says
// the answer must still be checked to lie in the patient's compartment.
func (s *Server) check(ctx context.Context, g *grant, method string, segs []string, query url.Values, body []byte) (checkRead bool, no *refusal) {
	if len(segs) == 0 {
		if method != http.MethodPost {
			return false, forbidden("%s on the base: only batch and transaction Bundles (POST) are supported", method)
		}
		return false, s.checkBundle(ctx, g, body)
	}
	typ := segs[0]
	if !isResourceType(typ) {
		return false, forbidden("%s: not a resource type this server authorizes", typ)
	}
	if len(segs) == 1 {
		switch method {
		case http.MethodGet:
			return false, g.checkSearch(typ, query)
		case http.MethodPost:
			return false, g.checkCreate(typ, body)
		}
	}
	unsupported := forbidden("%s %s: an interaction this server does not authorize", method, strings.Join(segs, "/"))
	if len(segs) < 2 || !isID(segs[1]) {
		return false, unsupported
	}
	id := segs[1]
	vread := len(segs) == 4 && segs[2] == "_history" && isID(segs[3])
	switch {
	case method == http.MethodGet && (len(segs) == 2 || vread):
		ok, compartment := g.allows(typ, "r")
		if !ok {
			return false, forbidden("no scope grants reading %s", typ)
		}
		return compartment, nil
	case method == http.MethodPut && len(segs) == 2:
		return false, s.checkUpdate(ctx, g, typ, id, body)
	case method == http.MethodDelete && len(segs) == 2:
		return false, s.checkDelete(ctx, g, typ, id)
	}
	return false, unsupported
}

// isID reports whether s may be a resource id (not an operation or _history).
func isID(s string) bool {
	return s != "" && len(s) <= 64 && s[0] != '$' && s[0] != '_'
}

// checkSearch allows a search of typ; under patient/ scopes it must be
// restricted to the token's patient by patient= or subject= (or _id= for
// Patient).
func (g *grant) checkSearch(typ string, query url.Values) *refusal {
	ok, compartment := g.allows(typ, "s")
	if !ok {
		return forbidden("no scope grants searching %s", typ)
	}
	if !compartment {
		return nil
	}
	keys := []string{"patient", "subject"}
	if typ == "Patient" {
		keys = append(keys, "_id")
	}
	for _, k := range keys {
		if vs, ok := query[k]; ok && g.namesPatient(vs) {
			return nil
		}
	}
	return forbidden("a search under patient/ scopes needs %s= naming the token's patient", strings.Join(keys, "= or "))
}

// namesPatient reports whether every one of the search values (each maybe
// a comma-separated list) names the token's patient, as "id" or a reference.
func (g *grant) namesPatient(values []string) bool {
	if g.patient == "" || len(values) == 0 {
		return false
	}
	for _, v := range values {
		for _, one := range strings.Split(v, ",") {
			if one != g.patient && !refersTo(one, g.patient) {
				return false
			}
		}
	}
	return true
}

// checkCreate allows creating body as a typ.
func (g *grant) checkCreate(typ string, body []byte) *refusal {
	res, no := resourceOf(typ, body)
	if no != nil {
		return no
	}
	ok, compartment := g.allows(typ, "c")
	if !ok {
		return forbidden("no scope grants creating %s", typ)
	}
	if compartment && !inCompartment(res, g.patient) {
		return forbidden("the new %s is not in the compartment of the token's patient", typ)
	}
	return nil
}

// checkUpdate allows writing body as typ/id: an update, or a create with
// the client's id. Under patient/ scopes both the new resource and the one
// it replaces, if any, must lie in the patient's compartment.
func (s *Server) checkUpdate(ctx context.Context, g *grant, typ, id string, body []byte) *refusal {
	res, no := resourceOf(typ, body)
	if no != nil {
		return no
	}
	if got, _ := res["id"].(string); got != id {
		return invalid("id: must be %s, as in the URL", id)
	}
	ok, compartment := g.allows(typ, "uc")
	if !ok {
		return forbidden("no scope grants updating %s", typ)
	}
	if !compartment {
		return nil
	}
	if !inCompartment(res, g.patient) {
		return forbidden("the %s written is not in the compartment of the token's patient", typ)
	}
	return s.checkExisting(ctx, g, typ, id)
}

// checkDelete allows deleting typ/id.
func (s *Server) checkDelete(ctx context.Context, g *grant, typ, id string) *refusal {
	ok, compartment := g.allows(typ, "d")
	if !ok {
		return forbidden("no scope grants deleting %s", typ)
	}
	if !compartment {
		return nil
	}
	return s.checkExisting(ctx, g, typ, id)
}

// checkExisting reads typ/id upstream: it must not exist or lie in the
// token's patient's compartment.
func (s *Server) checkExisting(ctx context.Context, g *grant, typ, id string) *refusal {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.upstream+"/"+typ+"/"+url.PathEscape(id), nil)
	if err != nil {
		return invalid("%s/%s: %v", typ, id, err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := s.do(req)
	switch {
	case err != nil:
		return &refusal{http.StatusBadGateway, "transient", "upstream: " + urlx.WithoutURL(err).Error()}
	case resp.status == http.StatusNotFound || resp.status == http.StatusGone:
		return nil
	case resp.status != http.StatusOK:
		return &refusal{http.StatusBadGateway, "transient", fmt.Sprintf("upstream: reading %s/%s answered %d", typ, id, resp.status)}
	}
	if res, err := parseResource(resp.body); err != nil || !inCompartment(res, g.patient) {
		return forbidden("%s/%s is not in the compartment of the token's patient", typ, id)
	}
	return nil
}

// bundle is what checkBundle reads of a batch or transaction Bundle.
type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
	} `json:"entry"`
}

// checkBundle allows a batch or transaction Bundle when the token may make
// every one of its entries' requests.
func (s *Server) checkBundle(ctx context.Context, g *grant, body []byte) *refusal {
	var b bundle
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" || (b.Type != "batch" && b.Type != "transaction") {
		return invalid("body: want a batch or transaction Bundle")
	}
	for i, e := range b.Entry {
		if no := s.checkEntry(ctx, g, e.Request.Method, e.Request.URL, e.Resource); no != nil {
			no.text = fmt.Sprintf("Bundle.entry[%d] (%s %s): %s", i, e.Request.Method, e.Request.URL, no.text)
			return no
		}
	}
	return nil
}

// checkEntry allows one Bundle entry's request: a POST, PUT or DELETE with
// a relative URL (or an absolute one under FHIRBase) and no query.
func (s *Server) checkEntry(ctx context.Context, g *grant, method, target string, resource []byte) *refusal {
	if rest, ok := urlx.Under(s.FHIRBase(), target); ok {
		target = rest
	}
	if strings.ContainsAny(target, "?#") || strings.Contains(target, "://") {
		return forbidden("conditional and foreign URLs are not supported")
	}
	segs, err := segments(strings.Trim(target, "/"))
	if err != nil || len(segs) == 0 || !isResourceType(segs[0]) {
		return invalid("request.url: want Type or Type/id")
	}
	switch {
	case method == http.MethodPost && len(segs) == 1:
		return g.checkCreate(segs[0], resource)
	case method == http.MethodPut && len(segs) == 2 && isID(segs[1]):
		return s.checkUpdate(ctx, g, segs[0], segs[1], resource)
	case method == http.MethodDelete && len(segs) == 2 && isID(segs[1]):
		return s.checkDelete(ctx, g, segs[0], segs[1])
	}
	return forbidden("only POST Type, PUT Type/id and DELETE Type/id entries are supported")
}

// resourceOf parses body as a resource of type typ.
func resourceOf(typ string, body []byte) (map[string]any, *refusal) {
	res, err := parseResource(body)
	if err != nil {
		return nil, invalid("body: want a %s resource in JSON", typ)
	}
	if got, _ := res["resourceType"].(string); got != typ {
		return nil, invalid("resourceType: must be %s", typ)
	}
	return res, nil
}

func parseResource(body []byte) (map[string]any, error) {
	var res map[string]any
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("not an object")
	}
	return res, nil
}

// inCompartment reports whether a resource lies in the compartment of the
// patient (an id): a Patient is its own, a Provenance is allowed as it is,
// a Binary (in no compartment in FHIR R4) is the patient's when its
// securityContext names the patient, as servers that take Binary's access
// rules from securityContext do; any other resource must refer to the
// patient by its subject, patient or for element (the first of them it
// has). A resource with none of them is outside, as is everything when
// there is no patient.
func inCompartment(res map[string]any, patient string) bool {
	if patient == "" {
		return false
	}
	switch res["resourceType"] {
	case "Provenance":
		return true
	case "Patient":
		return res["id"] == patient
	case "Binary":
		ref, _ := res["securityContext"].(map[string]any)
		s, _ := ref["reference"].(string)
		return refersTo(s, patient)
	}
	for _, field := range []string{"subject", "patient", "for"} {
		if ref, ok := res[field].(map[string]any); ok {
			s, _ := ref["reference"].(string)
			return refersTo(s, patient)
		}
	}
	return false
}

// refersTo reports whether a reference ("Patient/p1", an absolute URL, or
// either with /_history/v) names the patient.
func refersTo(ref, patient string) bool {
	segs := strings.Split(ref, "/")
	for i := 0; i+1 < len(segs); i++ {
		if segs[i] == "Patient" {
			return segs[i+1] == patient
		}
	}
	return false
}

// upstreamAnswer is an upstream response, read.
type upstreamAnswer struct {
	status int
	header http.Header
	body   []byte
}

// hopByHop are the headers that are not forwarded either way, with those
// the proxy sets itself.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Content-Length", "Authorization", "Cookie", "Set-Cookie", "Origin", "Vary",
	"Accept-Encoding"} // the transport asks for gzip and unpacks it itself, so answers can be checked

// forward sends the request on to the upstream, with its path below
// FHIRBase, its query, headers and body, the upstream's token in place of
// the app's, and its Host, so the FHIR test server (whose base path is
// /fhir/R4 as well) writes its paging links to the proxy.
func (s *Server) forward(r *http.Request, body []byte) (*upstreamAnswer, error) {
	target := s.upstream + strings.TrimPrefix(r.URL.EscapedPath(), fhirPath)
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	for _, h := range hopByHop {
		req.Header.Del(h)
	}
	for h := range req.Header {
		if strings.HasPrefix(h, "Access-Control-") {
			req.Header.Del(h)
		}
	}
	req.Host = r.Host
	return s.do(req)
}

// do sends req to the upstream with the upstream's token and reads the
// answer.
func (s *Server) do(req *http.Request) (*upstreamAnswer, error) {
	if s.opts.UpstreamToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.UpstreamToken)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read the upstream's answer: %w", err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("the upstream's answer is over %d bytes", maxBody)
	}
	return &upstreamAnswer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// write sends the upstream's answer on, without its hop-by-hop and CORS
// headers (the proxy sets its own).
func (a *upstreamAnswer) write(w http.ResponseWriter) {
	h := w.Header()
	for k, vs := range a.header {
		if strings.HasPrefix(k, "Access-Control-") || containsFold(hopByHop, k) {
			continue
		}
		h[k] = vs
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// outcome answers a refusal as a FHIR OperationOutcome.
func (s *Server) outcome(w http.ResponseWriter, no *refusal) {
	refuse(w, no.code)
	b, _ := json.Marshal(map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []map[string]string{{"severity": "error", "code": no.code, "diagnostics": no.text}},
	})
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(no.status)
	_, _ = w.Write(b)
}

// serveMetadata is <FHIRBase>/metadata, open to all as FHIR requires: the
// upstream's CapabilityStatement, or, when the upstream has none (Medplum's
// router has not), a minimal one naming this server's OAuth endpoints.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	resp, err := s.forward(r, nil)
	if err == nil && resp.status == http.StatusOK {
		if res, err := parseResource(resp.body); err == nil && res["resourceType"] == "CapabilityStatement" {
			resp.write(w)
			return
		}
	}
	oauth := func(name, uri string) map[string]string { return map[string]string{"url": name, "valueUri": uri} }
	b, _ := json.Marshal(map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         time.Now().UTC().Format("2006-01-02"),
		"kind":         "instance",
		"fhirVersion":  "4.0.1",
		"format":       []string{"json"},
		"implementation": map[string]string{
			"description": "smarttest proxy of the FHIR test server",
			"url":         s.FHIRBase(),
		},
		"rest": []map[string]any{{
			"mode": "server",
			"security": map[string]any{
				"service": []map[string]any{{"coding": []map[string]string{{
					"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
				"extension": []map[string]any{{
					"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
					"extension": []map[string]string{oauth("authorize", s.URL()+"/auth/authorize"), oauth("token", s.URL()+"/auth/token")},
				}},
			},
		}},
	})
	w.Header().Set("Content-Type", "application/fhir+json")
	_, _ = w.Write(b)
}
