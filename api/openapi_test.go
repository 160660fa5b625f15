package api

import (
	"bytes"
	"context"
	"flag"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

var update = flag.Bool("update", false, "rewrite openapi.json from the types")

// TestOpenAPIIsCurrent: the checked-in document is the one the types and
// the method table describe, so the contract served cannot drift from
// the code.
func TestOpenAPIIsCurrent(t *testing.T) {
	built, err := BuildOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("openapi.json", built, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(built, OpenAPI) {
		t.Fatal("api/openapi.json is not what the types describe: run go test ./api -run OpenAPI -update, and review the change")
	}
}

// TestOpenAPIValidates checks the document against the OpenAPI 3
// specification with kin-openapi's validator.
func TestOpenAPIValidates(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, e := range endpoints {
		op := doc.Paths.Find("/api/" + e.method)
		if op == nil || op.Post == nil {
			t.Fatalf("the document has no POST /api/%s", e.method)
		}
	}
}
