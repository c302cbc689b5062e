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
