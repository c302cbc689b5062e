package api

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestPanicsBecome500OperationOutcome(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	r := gin.New()
	r.Use(recoverPanics(log), requestID())
	r.GET("/boom", func(*gin.Context) { panic("index out of range") })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/boom", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", w.Code)
	}
	if !strings.Contains(w.Body.String(), `"resourceType":"OperationOutcome"`) || strings.Contains(w.Body.String(), "index out of range") {
		t.Errorf("body = %s: want an OperationOutcome that hides the panic", w.Body)
	}
	if !strings.Contains(logs.String(), "index out of range") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}
}

// TestDeclaredLengthReservesLittle: a body's buffer is sized from its
// declared Content-Length only up to maxPresizedBody, so a client that
// declares a megabyte and sends a few bytes holds no megabyte; a body that
// does come in full is read whole.
func TestDeclaredLengthReservesLittle(t *testing.T) {
	for _, tt := range []struct {
		declared int64
		body     string
	}{{1 << 20, `{"a":1}`}, {-1, `{"a":1}`}, {200 << 10, `"` + strings.Repeat("x", 200<<10-2) + `"`}} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
		c.Request.Header.Set("Content-Type", "application/json")
		c.Request.ContentLength = tt.declared
		got, err := readJSON(c)
		if err != nil || string(got) != tt.body {
			t.Fatalf("declared %d: read %d bytes, %v", tt.declared, len(got), err)
		}
		if limit := max(len(tt.body), 64<<10) + 2*bytes.MinRead; cap(got) > 2*limit {
			t.Errorf("declared %d, sent %d: a buffer of %d bytes", tt.declared, len(tt.body), cap(got))
		}
	}
}
