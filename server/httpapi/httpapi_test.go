package httpapi

import (
	"encoding/json"
	"sort"
	"testing"

	"parley/api"
)

// TestOpenAPIListsTheRouter: the document's paths are exactly the
// methods the router serves, and the read-only ones are marked.
func TestOpenAPIListsTheRouter(t *testing.T) {
	var doc struct {
		Paths map[string]struct {
			Post *struct {
				ReadOnly bool `json:"x-read-only"`
			} `json:"post"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths {
		if path == "/openapi.json" {
			continue
		}
		if item.Post == nil {
			t.Errorf("%s has no POST", path)
			continue
		}
		name := path[len("/api/"):]
		documented = append(documented, name)
		if item.Post.ReadOnly != api.ReadOnly[name] {
			t.Errorf("%s: x-read-only is %v, the API says %v", path, item.Post.ReadOnly, api.ReadOnly[name])
		}
	}
	routed := Methods()
	sort.Strings(documented)
	sort.Strings(routed)
	if len(documented) != len(routed) {
		t.Fatalf("the document lists %v, the router serves %v", documented, routed)
	}
	for i := range routed {
		if documented[i] != routed[i] {
			t.Fatalf("the document lists %v, the router serves %v", documented, routed)
		}
	}
}
