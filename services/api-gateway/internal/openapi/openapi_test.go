package openapi

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCopyMatchesDocs keeps the embedded copy identical to the published
// docs/openapi.yaml. Fix a failure with:
//
//	cp docs/openapi.yaml services/api-gateway/internal/openapi/openapi.yaml
func TestCopyMatchesDocs(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "docs", "openapi.yaml")
	docs, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("%s not present (module built outside the repository)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, Spec) {
		t.Fatalf("internal/openapi/openapi.yaml differs from docs/openapi.yaml; run: cp docs/openapi.yaml services/api-gateway/internal/openapi/openapi.yaml")
	}
}
