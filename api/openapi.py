"""The OpenAPI document's shared parts: the envelope models, error responses and the final touches.

Routes name the error statuses they can answer with :func:`error_responses`; :func:`install`
makes the generated document state the Bearer scheme, the free-form JSON value and nothing that
the server never sends (FastAPI's default 422 body, which the error envelope replaces).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from api.fields import JSON_VALUE_SCHEMA


class RateLimitMeta(BaseModel):
    limit: int
    remaining: int
    reset: int = Field(description="Epoch seconds when the window resets.")
    reset_at: datetime


class Meta(BaseModel):
    request_id: str = Field(examples=["req_8f3a2b1c4d5e6f70"])
    rate_limit: RateLimitMeta | None = None


class ListMeta(Meta):
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_failed"])
    message: str
    details: list[ErrorDetail] | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody
    meta: Meta


ERROR_TEXT = {
    400: "Malformed JSON",
    401: "Missing, invalid or revoked API key",
    402: "Plan limit reached",
    403: "The key lacks the ability",
    404: "No such resource in this team",
    409: "Conflict with a stored resource",
    413: "Body larger than 1 MiB",
    422: "Validation failed; details name the fields",
    429: "Rate limited; see Retry-After",
    503: "The database is unavailable; retry after Retry-After seconds",
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds until the window resets.", "schema": {"type": "integer", "minimum": 1}}
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer, in the error envelope.

    Every route authenticates (so 401, 403 and 429 are always there) and reads PostgreSQL (503).
    ``descriptions`` override the default text by status (``e404="No such link in this team"``).
    """
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({401, 403, 429, 503, *codes}):
        entry: dict[str, Any] = {"model": ErrorEnvelope, "description": descriptions.get(f"e{code}", ERROR_TEXT[code])}
        if code in (429, 503):
            entry["headers"] = RETRY_AFTER
        out[code] = entry
    return out


BODY_ERRORS = (400, 413, 422)
"""What any route with a JSON body can answer: malformed JSON, too large, invalid."""


def _drop_default_validation_errors(doc: dict[str, Any]) -> None:
    """FastAPI adds ``422: HTTPValidationError`` to routes with parameters; the server never sends that
    body (errors are the envelope), so it goes, and routes that can 422 declare the envelope themselves."""
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            content = responses.get("422", {}).get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _plain_parameters(doc: dict[str, Any]) -> None:
    """A query or path parameter is present or absent, never ``null``: FastAPI's ``anyOf [..., null]``
    for an optional one becomes the plain schema (keywords set beside the ``anyOf`` win)."""
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
                if "anyOf" in schema and len(branches) == 1:
                    outer = {k: v for k, v in schema.items() if k != "anyOf"}
                    parameter["schema"] = {**branches[0], **outer}


def install(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that adds the Bearer scheme and the shared schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
        )
        _drop_default_validation_errors(doc)
        _plain_parameters(doc)
        components = doc.setdefault("components", {})
        components.setdefault("schemas", {})["JsonValue"] = JSON_VALUE_SCHEMA
        components["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key, `lk_<prefix>.<secret>`; its abilities decide what it may do (403).",
            }
        }
        doc["security"] = [{"bearerAuth": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
