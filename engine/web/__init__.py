"""Web: the Starlette application, JSON API and OpenAPI description."""
