package imaging

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/internal/testenv"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

const orthancUser, orthancPassword = "pacs", "secret"

func str(s string) *string { return &s }

func wadoEndpoint(address string, requiresToken bool) models.Endpoint {
	ep := models.Endpoint{Address: address, ConnectionType: models.Coding{Code: str("dicom-wado-rs")}}
	if requiresToken {
		yes := true
		ep.Extension = []models.Extension{{Url: RequiresAccessTokenURL, ValueBoolean: &yes}}
	}
	return ep
}

// orthanc calls Orthanc's REST API and returns the body.
func orthanc(t *testing.T, method, url string, body []byte) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	req.SetBasicAuth(orthancUser, orthancPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, out)
	}
	return out
}

// upload stores a DICOM file in Orthanc and returns its Orthanc id.
func upload(t *testing.T, base string, data []byte) string {
	t.Helper()
	var r struct{ ID string }
	if err := json.Unmarshal(orthanc(t, http.MethodPost, base+"/instances", data), &r); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// TestRetrieveFromOrthanc stores one phantom in five encodings in a real
// Orthanc and retrieves each through both Endpoint address conventions:
// native, RLE, JPEG-LS, JPEG lossless and JPEG 2000 are decoded as stored;
// a retriever told to leave JPEG-LS to the server gets it transcoded by
// Orthanc. Pixels must equal the phantom's, and the route is recorded.
func TestRetrieveFromOrthanc(t *testing.T) {
	base := testenv.Orthanc(t, orthancUser, orthancPassword)
	const study = "2.25.400"
	p := phantom(128, 96, 12, false)
	variants := []struct {
		series, tool string
		opts         []string
		transcoded   bool
	}{
		{series: "2.25.401"},
		{series: "2.25.402", tool: "dcmcrle"},
		{series: "2.25.403", tool: "dcmcjpls"},
		{series: "2.25.404", tool: "dcmcjpeg", opts: []string{"+e1"}},
		{series: "2.25.405", tool: "gdcmconv", opts: []string{"--j2k"}},
	}
	for _, v := range variants {
		r := p
		r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID = study, v.series, v.series+".1"
		path := write(t, r)
		if v.tool != "" {
			path = dcmtk(t, v.tool, path, v.opts...)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		upload(t, base, data)
	}
	creds := []Credential{{BaseURL: base + "/dicom-web", Username: orthancUser, Password: orthancPassword}}
	r := NewRetriever(RetrieverOptions{Credentials: creds})
	for _, address := range []string{base + "/dicom-web", base + "/dicom-web/studies/" + study} {
		for _, v := range variants {
			t.Run(fmt.Sprintf("%s %s", strings.TrimPrefix(address, base), v.series), func(t *testing.T) {
				ref := InstanceRef{StudyInstanceUID: study, SeriesInstanceUID: v.series, SOPInstanceUID: v.series + ".1"}
				images, err := r.Retrieve(t.Context(), wadoEndpoint(address, false), ref, Access{}, 1)
				if err != nil {
					t.Fatal(err)
				}
				img := images[0]
				if d := maxDiff(img.Stored.Values(), ints(p.Stored)); d != 0 {
					t.Errorf("pixels differ from the phantom by up to %d", d)
				}
				if got := strings.HasSuffix(img.Meta.Source, "(transcoded)"); got != v.transcoded || img.Meta.Route != RouteAsStored {
					t.Errorf("source %q route %s: transcoded %v, want %v", img.Meta.Source, img.Meta.Route, got, v.transcoded)
				}
			})
		}
	}
	t.Run("JPEG-LS left to the server is transcoded", func(t *testing.T) {
		rt := NewRetriever(RetrieverOptions{Credentials: creds, Transcode: []string{TSJPEGLS}})
		ref := InstanceRef{StudyInstanceUID: study, SeriesInstanceUID: "2.25.403", SOPInstanceUID: "2.25.403.1"}
		images, err := rt.Retrieve(t.Context(), wadoEndpoint(base+"/dicom-web", false), ref, Access{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		img := images[0]
		if img.Meta.Route != RouteTranscoded || img.Meta.TransferSyntax != TSExplicitLE || img.Meta.Lossy {
			t.Errorf("route %s, syntax %s, lossy %v; want transcoded to explicit VR little endian, lossless", img.Meta.Route, img.Meta.TransferSyntax, img.Meta.Lossy)
		}
		if d := maxDiff(img.Stored.Values(), ints(p.Stored)); d != 0 {
			t.Errorf("pixels differ from the phantom by up to %d", d)
		}
	})
	t.Run("series without listed instances", func(t *testing.T) {
		images, err := r.Retrieve(t.Context(), wadoEndpoint(base+"/dicom-web", false), InstanceRef{StudyInstanceUID: study, SeriesInstanceUID: "2.25.402"}, Access{}, 2)
		if err != nil || len(images) != 1 || images[0].Meta.SOPInstanceUID != "2.25.402.1" {
			t.Fatalf("series retrieve: %d images, %v", len(images), err)
		}
	})
	t.Run("without credentials the server's 401 is reported", func(t *testing.T) {
		_, err := NewRetriever(RetrieverOptions{}).Retrieve(t.Context(), wadoEndpoint(base+"/dicom-web", false),
			InstanceRef{StudyInstanceUID: study, SeriesInstanceUID: "2.25.401", SOPInstanceUID: "2.25.401.1"}, Access{}, 1)
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
			t.Fatalf("error = %v, want the 401", err)
		}
	})
	t.Run("study URL naming another study is refused", func(t *testing.T) {
		_, err := r.Retrieve(t.Context(), wadoEndpoint(base+"/dicom-web/studies/2.25.999", false),
			InstanceRef{StudyInstanceUID: study, SeriesInstanceUID: "2.25.401", SOPInstanceUID: "2.25.401.1"}, Access{}, 1)
		if err == nil || !strings.Contains(err.Error(), "names another study") {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestStudyURL(t *testing.T) {
	tests := []struct{ address, want, err string }{
		{address: "https://pacs.example.org/dicom-web", want: "https://pacs.example.org/dicom-web/studies/1.2.3"},
		{address: "https://pacs.example.org/dicom-web/", want: "https://pacs.example.org/dicom-web/studies/1.2.3"},
		{address: "https://pacs.example.org/wado/studies/1.2.3", want: "https://pacs.example.org/wado/studies/1.2.3"},
		{address: "https://pacs.example.org/wado/studies/1.2.3/series/4", want: "https://pacs.example.org/wado/studies/1.2.3"},
		{address: "https://pacs.example.org/wado/studies/9.9", err: "names another study"},
		{address: "pacs.example.org/dicom-web", err: "not a plain absolute"},
		{address: "https://u:p@pacs.example.org/dicom-web", err: "not a plain absolute"},
	}
	for _, tt := range tests {
		got, err := StudyURL(tt.address, "1.2.3")
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("StudyURL(%s) error = %v, want %q", tt.address, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("StudyURL(%s) = %s, %v; want %s", tt.address, got, err, tt.want)
		}
	}
}

func TestAuthorizationChoice(t *testing.T) {
	r := NewRetriever(RetrieverOptions{Credentials: []Credential{
		{BaseURL: "https://pacs.example.org", Username: "u", Password: "p"},
		{BaseURL: "https://pacs.example.org/dicom-web", Token: "pacs-token"},
	}})
	acc := Access{FHIRBase: "https://ehr.example.org/fhir", Token: "ehr-token"}
	tests := []struct {
		name string
		ep   models.Endpoint
		want string
	}{
		{name: "same origin as the FHIR server", ep: wadoEndpoint("https://ehr.example.org/dicom-web", false), want: "Bearer ehr-token"},
		{name: "requires-access-token extension", ep: wadoEndpoint("https://images.example.org/wado", true), want: "Bearer ehr-token"},
		{name: "longest configured base wins", ep: wadoEndpoint("https://pacs.example.org/dicom-web", false), want: "Bearer pacs-token"},
		{name: "basic credentials", ep: wadoEndpoint("https://pacs.example.org/other", false), want: "Basic dTpw"},
		{name: "nothing for unknown servers", ep: wadoEndpoint("https://elsewhere.example.org/wado", false), want: ""},
	}
	for _, tt := range tests {
		if got := r.authorization(tt.ep, acc); got != tt.want {
			t.Errorf("%s: Authorization %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestRetryAndRenderedFallback uses an in-process server: two 503s before
// success are retried; a server that can neither send a decodable syntax
// (here one from the future) nor transcode is read through /rendered,
// marked lossy.
func TestRetryAndRenderedFallback(t *testing.T) {
	var calls atomic.Int32
	jls, err := os.ReadFile(dcmtk(t, "dcmcjpls", write(t, phantom(8, 8, 12, false))))
	if err != nil {
		t.Fatal(err)
	}
	jls = bytes.Replace(jls, []byte(TSJPEGLS), []byte("1.2.840.10008.1.2.4.98"), 1)
	var pngBytes bytes.Buffer
	g := image.NewGray(image.Rect(0, 0, 4, 2))
	g.SetGray(1, 0, color.Gray{Y: 255})
	_ = png.Encode(&pngBytes, g)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case n <= 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.HasSuffix(r.URL.Path, "/rendered"):
			w.Header().Set("Content-Type", "image/png")
			w.Write(pngBytes.Bytes())
		case strings.Contains(r.Header.Get("Accept"), "transfer-syntax=*"):
			w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary="b=1"`)
			fmt.Fprintf(w, "--b=1\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--b=1--\r\n", jls)
		default:
			w.WriteHeader(http.StatusNotAcceptable)
		}
	}))
	t.Cleanup(srv.Close)
	var decoded decodings
	r := NewRetriever(RetrieverOptions{Backoff: time.Millisecond, Observer: &decoded})
	images, err := r.Retrieve(t.Context(), wadoEndpoint(srv.URL, false), InstanceRef{StudyInstanceUID: "1", SeriesInstanceUID: "2", SOPInstanceUID: "3"}, Access{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if decoded.n.Load() != 2 {
		t.Errorf("the observer saw %d decodings, want 2 (the file as stored, refused; the rendered PNG)", decoded.n.Load())
	}
	img := images[0]
	if !img.Meta.Lossy || !strings.HasSuffix(img.Meta.Source, "/rendered") || img.Meta.Route != RouteRendered || img.Meta.Rows != 2 || img.Pixels[1] != 1 {
		t.Errorf("rendered fallback gave %+v", img.Meta)
	}
	if calls.Load() != 5 {
		t.Errorf("%d calls, want 2 failures, retrieve, transcode, rendered", calls.Load())
	}
}

// decodings counts what a Retriever tells its Observer.
type decodings struct{ n atomic.Int32 }

func (d *decodings) Decoded(time.Duration) { d.n.Add(1) }

// TestRouteAfterAnyRefusal: an answer refused for a reason other than its
// transfer syntax (a colour model this package does not read, a broken file)
// is also asked for again transcoded, and the route is recorded.
func TestRouteAfterAnyRefusal(t *testing.T) {
	good, err := os.ReadFile(write(t, phantom(8, 8, 12, false)))
	if err != nil {
		t.Fatal(err)
	}
	partial := variantBytes(t, func(r *Radiograph) { r.Photometric = "YBR_PARTIAL_420" })
	tests := []struct {
		name     string
		stored   []byte
		wantErr  error
		wantPath string
	}{
		{name: "colour model refused", stored: partial, wantErr: ErrNotImage},
		{name: "broken file", stored: good[:len(good)-40], wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.stored, Limits{}); !errors.Is(err, tt.wantErr) {
				t.Fatalf("local decode: %v, want %v", err, tt.wantErr)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body := good
				if strings.Contains(r.Header.Get("Accept"), "transfer-syntax=*") {
					body = tt.stored
				}
				w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=b`)
				fmt.Fprintf(w, "--b\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--b--\r\n", body)
			}))
			t.Cleanup(srv.Close)
			r := NewRetriever(RetrieverOptions{Backoff: time.Millisecond})
			images, err := r.Retrieve(t.Context(), wadoEndpoint(srv.URL, false), InstanceRef{StudyInstanceUID: "1", SeriesInstanceUID: "2", SOPInstanceUID: "3"}, Access{}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if images[0].Meta.Route != RouteTranscoded || images[0].Meta.Lossy {
				t.Errorf("route %s lossy %v, want transcoded, lossless", images[0].Meta.Route, images[0].Meta.Lossy)
			}
		})
	}
}

func variantBytes(t *testing.T, mutate func(*Radiograph)) []byte {
	t.Helper()
	r := phantom(8, 8, 12, false)
	mutate(&r)
	var b bytes.Buffer
	if err := WriteDICOM(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParseMultipart(t *testing.T) {
	body := "--abc\r\nContent-Type: application/dicom\r\n\r\nONE\r\n--abc\r\nContent-Type: application/dicom\r\n\r\nTWO\r\n--abc--\r\n"
	for _, ct := range []string{
		`multipart/related; type="application/dicom"; boundary=abc`,
		`multipart/related; boundary="abc"; type="application/dicom"`,
	} {
		parts, err := ParseMultipart([]byte(body), ct, 1024, 10)
		if err != nil || len(parts) != 2 || string(parts[0]) != "ONE" || string(parts[1]) != "TWO" {
			t.Errorf("%s: %q, %v", ct, parts, err)
		}
	}
	if parts, _ := ParseMultipart([]byte(body), `multipart/related; boundary=abc`, 1024, 1); len(parts) != 1 {
		t.Errorf("max parts not honoured: %d", len(parts))
	}
	for _, ct := range []string{"application/dicom", "multipart/related", "multipart/related; boundary="} {
		if _, err := ParseMultipart([]byte(body), ct, 1024, 10); err == nil {
			t.Errorf("%q accepted", ct)
		}
	}
	if _, err := ParseMultipart([]byte(body), `multipart/related; boundary=abc`, 2, 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("part over the limit: %v", err)
	}
}

func FuzzParseMultipart(f *testing.F) {
	f.Add([]byte("--abc\r\nContent-Type: application/dicom\r\n\r\nONE\r\n--abc--\r\n"), `multipart/related; boundary="abc"`)
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		parts, err := ParseMultipart(body, ct, 1<<16, 8)
		if err == nil && (len(parts) == 0 || len(parts) > 8) {
			t.Fatalf("%d parts without error", len(parts))
		}
	})
}

func TestAttachments(t *testing.T) {
	var dcm bytes.Buffer
	p := phantom(16, 16, 12, false)
	if err := WriteDICOM(&dcm, p); err != nil {
		t.Fatal(err)
	}
	var pngBytes bytes.Buffer
	g := image.NewGray16(image.Rect(0, 0, 3, 1))
	g.SetGray16(2, 0, color.Gray16{Y: 65535})
	_ = png.Encode(&pngBytes, g)
	var gotAuth atomic.Value
	fhirSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/fhir/Binary/raw":
			w.Header().Set("Content-Type", "application/dicom")
			w.Write(dcm.Bytes())
		case "/fhir/Binary/json":
			w.Header().Set("Content-Type", "application/fhir+json")
			json.NewEncoder(w).Encode(map[string]string{"resourceType": "Binary", "contentType": "image/png", "data": b64(pngBytes.Bytes())})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(fhirSrv.Close)
	acc := Access{FHIRBase: fhirSrv.URL + "/fhir", Token: "ehr-token"}
	r := NewRetriever(RetrieverOptions{})
	tests := []struct {
		name     string
		resource string
		rows     int
		err      bool
	}{
		{name: "Binary inline DICOM", resource: `{"resourceType":"Binary","contentType":"application/dicom","data":"` + b64(dcm.Bytes()) + `"}`, rows: 16},
		{name: "Media with a relative url", resource: `{"resourceType":"Media","status":"completed","content":{"contentType":"application/dicom","url":"Binary/raw"}}`, rows: 16},
		{name: "DocumentReference, PNG served as a Binary resource", resource: `{"resourceType":"DocumentReference","content":[{"attachment":{"contentType":"text/plain","data":"aGk="}},{"attachment":{"contentType":"image/png","url":"` + fhirSrv.URL + `/fhir/Binary/json"}}]}`, rows: 1},
		{name: "nothing decodable", resource: `{"resourceType":"DocumentReference","content":[{"attachment":{"contentType":"application/pdf","data":"aGk="}}]}`, err: true},
		{name: "not an attachment resource", resource: `{"resourceType":"Patient"}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			images, err := r.FromResource(t.Context(), json.RawMessage(tt.resource), acc)
			if tt.err {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if images[0].Meta.Rows != tt.rows {
				t.Errorf("rows %d, want %d", images[0].Meta.Rows, tt.rows)
			}
		})
	}
	if gotAuth.Load() != "Bearer ehr-token" {
		t.Errorf("same-origin attachment fetched with Authorization %q", gotAuth.Load())
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestTenantBindingRefusesUnregisteredURLs(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	r := NewRetriever(RetrieverOptions{Retries: -1})
	acc := Access{FHIRBase: "https://ehr.example.org/fhir", AllowedBases: []string{"https://pacs.example.org/dicom-web"}}
	ref := InstanceRef{StudyInstanceUID: "1", SeriesInstanceUID: "2", SOPInstanceUID: "3"}
	for _, address := range []string{srv.URL + "/dicom-web", "https://pacs.example.org/dicom-webX", "https://pacs.example.org.evil.org/dicom-web"} {
		if _, err := r.Retrieve(t.Context(), wadoEndpoint(address, false), ref, acc, 1); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s: %v, want ErrNotAllowed", address, err)
		}
	}
	att := `{"resourceType":"Media","content":{"contentType":"application/dicom","url":"` + srv.URL + `/Binary/1"}}`
	if _, err := r.FromResource(t.Context(), json.RawMessage(att), acc); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("attachment url: %v, want ErrNotAllowed", err)
	}
	if hits.Load() != 0 {
		t.Errorf("the unregistered server was contacted %d times", hits.Load())
	}
	for _, ok := range []string{"https://pacs.example.org/dicom-web/studies/1", "https://ehr.example.org/fhir/Binary/9"} {
		if err := acc.permit(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}
