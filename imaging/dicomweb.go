package imaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage/internal/urlx"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// RequiresAccessTokenURL is the SMART Imaging Access extension on an
// Endpoint saying that retrieval needs the same bearer token as the FHIR call.
const RequiresAccessTokenURL = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/requires-access-token"

// Credential is configured access to one DICOMweb base: a bearer token, or
// HTTP basic user and password.
type Credential struct {
	BaseURL  string `yaml:"base_url" json:"base_url"`
	Token    string `yaml:"token,omitempty" json:"token,omitempty"`
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	Password string `yaml:"password,omitempty" json:"password,omitempty"`
}

// Access is the hook call's FHIR server and bearer token, lent to retrieval
// for same-origin DICOMweb and attachment requests, and the DICOMweb bases
// the calling EHR registered.
type Access struct {
	FHIRBase string
	Token    string
	// AllowedBases, when not nil, are the only bases (besides FHIRBase)
	// that Endpoint addresses and attachment urls may lie under
	// (urlx.Under: same origin, whole path segments): the tenant binding of
	// an authenticated caller.
	AllowedBases []string
}

// ErrNotAllowed means a URL named in the data is not among the caller's
// registered DICOMweb bases.
var ErrNotAllowed = errors.New("imaging: URL not registered for this caller")

// ErrBadURL means a URL named in the data is not an absolute http(s) URL
// retrieval may follow: it has userinfo, dot segments or an encoded "/".
var ErrBadURL = errors.New("imaging: URL refused: not a plain absolute http(s) URL")

// permit refuses, before any connection is made, a URL that is not a plain
// absolute http(s) URL, and one outside the caller's registered bases.
func (a Access) permit(target string) error {
	if urlx.Origin(target) == "" {
		return ErrBadURL
	}
	if a.AllowedBases == nil {
		return nil
	}
	for _, base := range append([]string{a.FHIRBase}, a.AllowedBases...) {
		if _, ok := urlx.Under(base, target); ok && base != "" {
			return nil
		}
	}
	return fmt.Errorf("%w: %s (auth.issuers_file dicomweb_bases)", ErrNotAllowed, urlx.Origin(target))
}

// redirectKey carries a request's redirectPolicy to CheckRedirect.
type redirectKey struct{}

// redirectPolicy says whether a redirect target may be followed and with
// which Authorization header ("" for none): the one the target itself is
// entitled to, never simply the first request's.
type redirectPolicy func(to string) (auth string, err error)

// Retriever fetches radiographs over DICOMweb (WADO-RS) and from FHIR
// attachments. It is safe for concurrent use.
type Retriever struct {
	http        *http.Client
	limits      Limits
	timeout     time.Duration // per HTTP request
	retries     int           // extra tries after a 5xx, 429 or connection error
	backoff     time.Duration // first wait between tries, doubled each time
	credentials []Credential
	refuse      map[string]bool // transfer syntaxes always asked for transcoded
	compressed  bool            // let responses be gzip-compressed
	observer    Observer
}

// Observer is told how long each image's decoding took (DICOM or raster,
// whichever route it came by, failures included); the service's metrics
// are one. It must be safe for concurrent use.
type Observer interface {
	Decoded(d time.Duration)
}

// RetrieverOptions configure a Retriever; zero values take the defaults
// (DefaultLimits, 30 s per request, 2 retries from 250 ms).
type RetrieverOptions struct {
	Limits      Limits
	Timeout     time.Duration
	Retries     int
	Backoff     time.Duration
	Credentials []Credential
	Transport   http.RoundTripper // nil: Go's default; the egress policy comes in here
	// Transcode names transfer syntaxes not decoded here even when they
	// could be: the server is asked to transcode them (a way to route
	// around a codec, and how tests reach that route).
	Transcode []string
	// Compressed lets responses come gzip-compressed (Go asks for it and
	// inflates them). Off by default: DICOM files are mostly compressed
	// already or barely compressible, and a PACS compressing every
	// instance on the fly (Orthanc does) costs more time than the bytes
	// save on a hospital network; requests then say Accept-Encoding:
	// identity.
	Compressed bool
	// Observer, when set, is told each decoding's duration.
	Observer Observer
}

// NewRetriever returns a Retriever.
func NewRetriever(o RetrieverOptions) *Retriever {
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits()
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Retries < 0 {
		o.Retries = 0
	} else if o.Retries == 0 {
		o.Retries = 2
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	var refuse map[string]bool
	for _, ts := range o.Transcode {
		if refuse == nil {
			refuse = map[string]bool{}
		}
		refuse[ts] = true
	}
	return &Retriever{
		http: &http.Client{Transport: o.Transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			to := req.URL.String()
			if !urlx.SameOrigin(to, via[0].URL.String()) {
				return fmt.Errorf("redirect to another origin (%s) refused", urlx.Origin(to))
			}
			policy, ok := req.Context().Value(redirectKey{}).(redirectPolicy)
			if !ok {
				return errors.New("redirect refused")
			}
			auth, err := policy(to)
			if err != nil {
				return fmt.Errorf("redirect refused: %w", err)
			}
			// Go keeps Authorization on the same host, also on a path
			// the first request's credentials were not meant for.
			req.Header.Del("Authorization")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			return nil
		}},
		limits: o.Limits, timeout: o.Timeout, retries: o.Retries, backoff: o.Backoff, credentials: o.Credentials,
		refuse: refuse, compressed: o.Compressed, observer: o.Observer,
	}
}

// ErrNoImage means a retrieval returned nothing decodable.
var ErrNoImage = errors.New("imaging: no decodable image")

// StudyURL returns the WADO-RS URL of a study from an Endpoint address.
// Guides disagree on what the address is, so both are accepted: an address
// whose path holds a "studies/{uid}" segment pair is a study URL (its UID
// must be the study's); any other address is a WADO-RS base, and
// "/studies/{uid}" is appended.
//
// Errors name neither the address nor the UIDs: they are logged, and an
// address may hold anything.
func StudyURL(address, studyUID string) (string, error) {
	u, err := url.Parse(strings.TrimRight(address, "/"))
	if err != nil || urlx.Origin(address) == "" {
		return "", errors.New("imaging: endpoint address is not a plain absolute http(s) URL")
	}
	if studyUID == "" {
		return "", errors.New("imaging: the ImagingStudy has no DICOM Study Instance UID (identifier system urn:dicom:uid)")
	}
	parts := strings.Split(u.Path, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "studies" {
			if parts[i+1] != studyUID {
				return "", errors.New("imaging: endpoint address names another study than the ImagingStudy's Study Instance UID")
			}
			u.Path = strings.Join(parts[:i+2], "/")
			return u.String(), nil
		}
	}
	return u.String() + "/studies/" + url.PathEscape(studyUID), nil
}

// IsWADORS reports whether an Endpoint serves DICOM WADO-RS.
func IsWADORS(ep models.Endpoint) bool {
	c := ep.ConnectionType
	return c.Code != nil && *c.Code == "dicom-wado-rs"
}

func requiresAccessToken(ep models.Endpoint) bool {
	for _, e := range ep.Extension {
		if e.Url == RequiresAccessTokenURL && e.ValueBoolean != nil && *e.ValueBoolean {
			return true
		}
	}
	return false
}

// Routes by which the retriever got an image's bytes (Metadata.Route).
const (
	RouteAsStored   = "as-stored"
	RouteTranscoded = "transcoded"
	RouteRendered   = "rendered"
)

// Retrieve fetches and decodes the image(s) ref names from a WADO-RS
// endpoint: a single instance, or the first images of a series when ref has
// no SOP Instance UID. Files are asked for as stored; when an answer cannot
// be decoded here, for whatever reason (a syntax, a colour model, a broken
// file), it is asked for again transcoded to Explicit VR Little Endian; when
// that fails too, an instance's /rendered PNG is used and the image is
// marked lossy 8-bit. Metadata.Route says which route each image took.
func (r *Retriever) Retrieve(ctx context.Context, ep models.Endpoint, ref InstanceRef, acc Access, max int) ([]*Image, error) {
	if !IsWADORS(ep) {
		return nil, fmt.Errorf("imaging: endpoint at %s is not dicom-wado-rs", urlx.Origin(ep.Address))
	}
	if err := acc.permit(ep.Address); err != nil {
		return nil, err
	}
	study, err := StudyURL(ep.Address, ref.StudyInstanceUID)
	if err != nil {
		return nil, err
	}
	target := study + "/series/" + url.PathEscape(ref.SeriesInstanceUID)
	op := "WADO-RS retrieve series"
	if ref.SOPInstanceUID != "" {
		target += "/instances/" + url.PathEscape(ref.SOPInstanceUID)
		op = "WADO-RS retrieve instance"
	}
	// The UIDs just added are checked too: one such as ".." must not
	// climb out of the permitted base.
	if err := acc.permit(target); err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, redirectKey{}, redirectPolicy(func(to string) (string, error) {
		if err := acc.permit(to); err != nil {
			return "", err
		}
		moved := ep
		moved.Address = to
		return r.authorization(moved, acc), nil
	}))
	q := request{target: target, op: op + " at " + urlx.Origin(target), auth: r.authorization(ep, acc)}
	if max <= 0 {
		max = 1
	}
	parts, err := r.multipart(ctx, q, `multipart/related; type="application/dicom"; transfer-syntax=*`, max)
	var images []*Image
	var firstErr error
	if err != nil {
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusNotAcceptable {
			return nil, err
		}
		firstErr = err // a server that will not send files as stored may still transcode
	}
	for _, p := range parts {
		img, err := r.decode(p)
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return nil, fmt.Errorf("decode %s: %w", q.op, err)
			}
			firstErr = fmt.Errorf("decode %s: %w", q.op, err)
			continue
		}
		img.Meta.Source, img.Meta.Route = target, RouteAsStored
		images = append(images, img)
	}
	if firstErr == nil || len(images) >= max {
		if len(images) == 0 {
			return nil, fmt.Errorf("%w: %s", ErrNoImage, q.op)
		}
		return images, nil
	}
	more, err := r.transcoded(ctx, q, max-len(images))
	if err != nil && ref.SOPInstanceUID != "" && len(images) == 0 {
		img, rerr := r.rendered(ctx, q)
		if rerr != nil {
			return nil, fmt.Errorf("%w: %s: as stored (%v), transcoded (%v) and /rendered (%v) all failed", ErrNoImage, q.op, firstErr, err, rerr)
		}
		more, err = []*Image{img}, nil
	}
	if err != nil && len(images) == 0 {
		return nil, fmt.Errorf("%w: %s: as stored (%v), then transcoded (%v)", ErrNoImage, q.op, firstErr, err)
	}
	return append(images, more...), nil
}

// decode decodes a DICOM part, refusing the syntaxes configured to be
// transcoded by the server.
func (r *Retriever) decode(p []byte) (*Image, error) {
	if len(r.refuse) > 0 {
		if ts, _, err := fileMeta(p); err == nil && r.refuse[ts] {
			return nil, &ErrUnsupportedTransferSyntax{UID: ts, Detail: "configured to be transcoded by the server"}
		}
	}
	return r.timed(func() (*Image, error) { return Decode(p, r.limits) })
}

// timed runs one decoding and tells the observer how long it took.
func (r *Retriever) timed(decode func() (*Image, error)) (*Image, error) {
	if r.observer == nil {
		return decode()
	}
	start := time.Now()
	img, err := decode()
	r.observer.Decoded(time.Since(start))
	return img, err
}

// request is one GET: its URL, the name errors give it instead of the URL
// (the operation and the origin: paths hold UIDs and ids), and its
// Authorization header ("" for none).
type request struct {
	target, op, auth string
}

func (r *Retriever) transcoded(ctx context.Context, q request, max int) ([]*Image, error) {
	q.op += " (transcoded)"
	parts, err := r.multipart(ctx, q, `multipart/related; type="application/dicom"; transfer-syntax=`+TSExplicitLE, max)
	if err != nil {
		return nil, err
	}
	var images []*Image
	for _, p := range parts {
		img, err := r.timed(func() (*Image, error) { return Decode(p, r.limits) })
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", q.op, err)
		}
		img.Meta.Source, img.Meta.Route = q.target+" (transcoded)", RouteTranscoded
		images = append(images, img)
	}
	return images, nil
}

func (r *Retriever) rendered(ctx context.Context, q request) (*Image, error) {
	q.target += "/rendered"
	q.op = strings.Replace(q.op, "WADO-RS retrieve", "WADO-RS rendered", 1)
	body, ctype, err := r.get(ctx, q, "image/png", r.limits.MaxBytes)
	if err != nil {
		return nil, err
	}
	img, err := r.timed(func() (*Image, error) { return DecodeRaster(body, ctype, r.limits) })
	if err != nil {
		return nil, err
	}
	img.Meta.Source, img.Meta.Route = q.target, RouteRendered
	img.Meta.Lossy = true
	return img, nil
}

// authorization picks the Authorization header for an endpoint: the hook's
// bearer token on the FHIR server's origin or when the endpoint requires it,
// else configured credentials for the longest base the address lies under
// (urlx.Under: https://pacs.example.org/dicom-web does not hold
// https://pacs.example.org/dicom-webX, nor https://pacs.example.org.evil).
func (r *Retriever) authorization(ep models.Endpoint, acc Access) string {
	if acc.Token != "" && (requiresAccessToken(ep) || urlx.SameOrigin(ep.Address, acc.FHIRBase)) {
		return "Bearer " + acc.Token
	}
	var best *Credential
	for i, c := range r.credentials {
		if _, ok := urlx.Under(c.BaseURL, ep.Address); ok && (best == nil || len(c.BaseURL) > len(best.BaseURL)) {
			best = &r.credentials[i]
		}
	}
	switch {
	case best == nil:
		return ""
	case best.Token != "":
		return "Bearer " + best.Token
	default:
		req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		req.SetBasicAuth(best.Username, best.Password)
		return req.Header.Get("Authorization")
	}
}

// multipart GETs a multipart/related response and returns up to max parts,
// reading them as they arrive: a series larger than max parts is not read
// to its end.
func (r *Retriever) multipart(ctx context.Context, q request, accept string, max int) ([][]byte, error) {
	var parts [][]byte
	err := r.do(ctx, q, accept, func(resp *http.Response) error {
		var err error
		parts, err = readMultipart(resp.Body, resp.Header.Get("Content-Type"), r.limits.MaxBytes, max)
		return err
	})
	return parts, err
}

// ParseMultipart splits a multipart/related body into its parts' bodies,
// reading the boundary (quoted or not) from the Content-Type.
func ParseMultipart(body []byte, contentType string, maxPart int64, maxParts int) ([][]byte, error) {
	return readMultipart(bytes.NewReader(body), contentType, maxPart, maxParts)
}

// ReadMultipart is ParseMultipart reading from a stream: it stops after
// maxParts parts.
func ReadMultipart(body io.Reader, contentType string, maxPart int64, maxParts int) ([][]byte, error) {
	return readMultipart(body, contentType, maxPart, maxParts)
}

func readMultipart(body io.Reader, contentType string, maxPart int64, maxParts int) ([][]byte, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return nil, fmt.Errorf("imaging: response is %q, want multipart/related", contentType)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, fmt.Errorf("imaging: multipart response without a boundary")
	}
	mr := multipart.NewReader(body, boundary)
	var parts [][]byte
	for len(parts) < maxParts {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("imaging: multipart: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(p, maxPart+1))
		if err != nil {
			return nil, fmt.Errorf("imaging: multipart part: %w", err)
		}
		if int64(len(data)) > maxPart {
			return nil, fmt.Errorf("%w: a part is larger than %d bytes", ErrTooLarge, maxPart)
		}
		parts = append(parts, data)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: the multipart response has no parts", ErrNoImage)
	}
	return parts, nil
}

// HTTPError is a non-success answer of a DICOMweb or attachment server.
// Op names the request ("WADO-RS retrieve instance at
// https://pacs.example.org"), never its path: it holds UIDs and ids.
type HTTPError struct {
	Op     string
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("imaging: %s: answered %d %s", e.Op, e.Status, http.StatusText(e.Status))
}

// get performs a GET (see do) and reads at most limit bytes of the body.
func (r *Retriever) get(ctx context.Context, q request, accept string, limit int64) ([]byte, string, error) {
	var body []byte
	var ctype string
	err := r.do(ctx, q, accept, func(resp *http.Response) error {
		var err error
		body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return fmt.Errorf("imaging: %s: reading: %w", q.op, urlx.WithoutURL(err))
		}
		if int64(len(body)) > limit {
			return fmt.Errorf("%w: %s returned more than %d bytes", ErrTooLarge, q.op, limit)
		}
		ctype = resp.Header.Get("Content-Type")
		return nil
	})
	return body, ctype, err
}

// do performs a GET with the per-request deadline, retrying with
// exponential backoff on connection errors, 429 and 5xx, and hands a 200
// response to consume.
func (r *Retriever) do(ctx context.Context, q request, accept string, consume func(*http.Response) error) error {
	wait := r.backoff
	var lastErr error
	for try := 0; try <= r.retries; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("imaging: %s: %w (last error: %v)", q.op, ctx.Err(), lastErr)
			case <-time.After(wait):
			}
			wait *= 2
		}
		retry, err := r.doOnce(ctx, q, accept, consume)
		if err == nil {
			return nil
		}
		if !retry {
			return err
		}
		lastErr = err
	}
	return lastErr
}

func (r *Retriever) doOnce(ctx context.Context, q request, accept string, consume func(*http.Response) error) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, q.target, nil)
	if err != nil {
		return false, fmt.Errorf("imaging: %s: bad URL", q.op)
	}
	req.Header.Set("Accept", accept)
	if !r.compressed {
		req.Header.Set("Accept-Encoding", "identity")
	}
	if q.auth != "" {
		req.Header.Set("Authorization", q.auth)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return ctx.Err() == nil, fmt.Errorf("imaging: %s: %w", q.op, urlx.WithoutURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		retry := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		return retry, &HTTPError{Op: q.op, Status: resp.StatusCode}
	}
	return false, consume(resp)
}
