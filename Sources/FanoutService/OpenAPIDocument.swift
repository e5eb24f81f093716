/// The OpenAPI description served at `GET /v1/openapi.yaml`; a test keeps it identical to `openapi.yaml`.
enum OpenAPIDocument {
    static let yaml = #"""
openapi: 3.1.0
info:
  title: fanoutd
  version: 1.0.0
paths: {}
"""#
}
