"""The HTTP transport: routes, middleware, the OpenAPI document."""
