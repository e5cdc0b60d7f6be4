// Package tunnelgateway holds the gateway's API description, openapi.yaml, which the server
// publishes and from which internal/validation compiles its request schema.
package tunnelgateway

import _ "embed"

// OpenAPI is openapi.yaml as built into the binary: the OpenAPI 3.1 description of every route,
// the status mapping, and the MicrosoftTunnelServerUpdate schema that request bodies must meet.
//
//go:embed openapi.yaml
var OpenAPI []byte
