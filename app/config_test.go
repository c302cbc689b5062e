package app

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/imaging"
)

// TestConfigSecretsReachRetrieval: the DICOMweb credentials reach the
// retriever as their values, not as the masked text a config.Secret prints.
func TestConfigSecretsReachRetrieval(t *testing.T) {
	cfg := config.Default()
	cfg.Imaging.Credentials = []config.DICOMwebCredential{
		{BaseURL: "https://pacs.example.org", Username: "u", Password: "pacs-password"},
		{BaseURL: "https://vna.example.org", Token: "vna-token"},
	}
	want := []imaging.Credential{
		{BaseURL: "https://pacs.example.org", Username: "u", Password: "pacs-password"},
		{BaseURL: "https://vna.example.org", Token: "vna-token"},
	}
	if diff := cmp.Diff(want, RetrieverOptions(cfg).Credentials); diff != "" {
		t.Errorf("credentials (-want +got):\n%s", diff)
	}
}
