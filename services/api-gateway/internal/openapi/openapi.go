// Package openapi embeds the REST API's OpenAPI description, served at
// /v1/openapi.yaml. The file here is a copy of docs/openapi.yaml (the
// module must build alone, from its own directory, and go:embed cannot
// reach outside it); a test fails when the two differ.
package openapi

import _ "embed"

// Spec is docs/openapi.yaml.
//
//go:embed openapi.yaml
var Spec []byte
