package imaging

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestDICOMwebAsksForIdentityEncoding: by default a retrieval asks for the
// files uncompressed (Accept-Encoding: identity), so a PACS does not gzip
// every instance on the fly; with Compressed it lets Go ask for gzip.
func TestDICOMwebAsksForIdentityEncoding(t *testing.T) {
	var dcm bytes.Buffer
	if err := WriteDICOM(&dcm, phantom(8, 8, 12, false)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=b`)
		w.Write([]byte("--b\r\nContent-Type: application/dicom\r\n\r\n"))
		w.Write(dcm.Bytes())
		w.Write([]byte("\r\n--b--\r\n"))
	}))
	t.Cleanup(srv.Close)
	access := Access{AllowedBases: []string{srv.URL + "/dicom-web"}}
	ref := InstanceRef{StudyInstanceUID: "1", SeriesInstanceUID: "2", SOPInstanceUID: "3"}
	for _, tt := range []struct {
		name       string
		compressed bool
		want       string
	}{
		{"default", false, "identity"},
		{"compressed", true, "gzip"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			r := NewRetriever(RetrieverOptions{Retries: -1, Compressed: tt.compressed})
			if _, err := r.Retrieve(t.Context(), wadoEndpoint(srv.URL+"/dicom-web", false), ref, access, 1); err != nil {
				t.Fatal(err)
			}
			if len(seen) == 0 || seen[0] != tt.want {
				t.Errorf("Accept-Encoding %q, want %q", seen, tt.want)
			}
		})
	}
}
