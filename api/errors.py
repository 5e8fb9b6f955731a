"""One exception family for the API, rendered by one set of handlers into the error envelope.

``{"error": {"code", "message", "details": [{"field", "message"}]}, "meta": {"request_id"}}``
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.envelope import error_response

log = logging.getLogger("linkedge.api")

# What a lost or unreachable PostgreSQL raises: the request gets a 503 with Retry-After, and the
# log gets one line per outage rather than a traceback per request. Programming errors (other
# InterfaceErrors, query errors) stay 500s.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect or pool acquire timed out
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,  # the server went away mid-query
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown
)
RETRY_AFTER = "5"
# asyncpg's InternalClientError also means a lost connection when its protocol state says so (a
# connection that broke mid-operation: "protocol is in the failed state", "not connected", "cannot
# switch to state"); any other InternalClientError stays a 500.
LOST_CONNECTION_STATES = ("cannot switch to state", "not connected")


class OutageLog:
    """Logs a dependency failure once per ``every`` seconds, with how many were not logged."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.last = -every
        self.quiet = 0

    def note(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            self.quiet += 1
            return
        more = f" ({self.quiet} more failed requests since the last line)" if self.quiet else ""
        log.warning("%s unavailable, answering 503: %s%s", what, exc or type(exc).__name__, more)
        self.last, self.quiet = now, 0


Detail = dict[str, str]


class ApiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Sequence[Detail] = (), headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.headers = headers or {}


class BadRequest(ApiError):
    status_code, code = 400, "bad_request"


class Unauthorized(ApiError):
    status_code, code = 401, "unauthorized"


class PaymentRequired(ApiError):
    status_code, code = 402, "plan_limit"


class Forbidden(ApiError):
    status_code, code = 403, "forbidden"


class NotFound(ApiError):
    status_code, code = 404, "not_found"


class Conflict(ApiError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status_code, code = 413, "payload_too_large"


class ValidationFailed(ApiError):
    status_code, code = 422, "validation_failed"

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        """A 422 about one field; ``message`` reads after the field name ("must be between 1 and 100")."""
        return cls(f"{field} {message.rstrip('.')}.", details=[{"field": field, "message": message}])


class RateLimited(ApiError):
    status_code, code = 429, "rate_limited"


class ServiceUnavailable(ApiError):
    """A dependency other than PostgreSQL (a DNS resolver, say) did not answer: retry later."""

    status_code, code = 503, "service_unavailable"

    def __init__(self, message: str, *, retry_after: str = RETRY_AFTER) -> None:
        super().__init__(message, headers={"Retry-After": retry_after})


def _field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    name = ""
    for p in parts:
        name += f"[{p}]" if p.isdigit() else (f".{p}" if name else p)
    return name or "body"


def _validation_details(exc: RequestValidationError) -> tuple[list[Detail], bool]:
    details: list[Detail] = []
    malformed = False
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            malformed = True
        msg = str(err.get("msg", "is invalid"))
        msg = msg.removeprefix("Value error, ")
        details.append({"field": _field_name(err.get("loc", ())), "message": msg})
    return details, malformed


def allowed_methods(request: Request, fallback: str = "") -> str:
    """The ``Allow`` header of a 405: every method the OpenAPI document gives the request's path.

    Starlette names only the route that matched first, and FastAPI makes one route per method, so
    ``/links`` would say ``Allow: POST`` though it serves GET too. Of the documented paths that match,
    the one with the fewest parameters wins (``/links/bulk`` over ``/links/{link_id}``), as routing
    picks it. A path the document leaves out (``/healthz``) keeps Starlette's answer, ``fallback``.
    """
    path = request.url.path
    best: tuple[int, list[str]] | None = None
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]*\})", template)
        )
        if re.fullmatch(pattern, path):
            params = template.count("{")
            if best is None or params < best[0]:
                best = (params, sorted(m.upper() for m in item if m in _METHODS))
    return ", ".join(best[1]) if best else fallback


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def install_handlers(app: FastAPI, *, authenticate_first: Callable[[Any], Awaitable[object]] | None = None) -> None:
    """The error envelope for every failure. ``authenticate_first`` checks the key of a request whose
    body is not JSON, so a caller without a valid key learns 401, not how its body was parsed."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(request, exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details, malformed = _validation_details(exc)
        if malformed:
            if authenticate_first is not None:
                try:
                    await authenticate_first(request)
                except ApiError as e:
                    return await api_error(request, e)
            return error_response(request, 400, "malformed_json", "The request body is not valid JSON.", [])
        fields = ", ".join(dict.fromkeys(d["field"] for d in details))
        return error_response(request, 422, "validation_failed", f"Invalid value for {fields}.", details)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "payload_too_large"}
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            message = "No such endpoint."
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request, headers.get("Allow", ""))
        return error_response(request, exc.status_code, codes.get(exc.status_code, "error"), message, [], headers)

    outages = OutageLog()

    async def database_down(request: Request, exc: Exception) -> Response:
        outages.note("PostgreSQL", exc)
        message = "The database is unavailable right now; retry in a few seconds."
        return error_response(request, 503, "service_unavailable", message, [], {"Retry-After": RETRY_AFTER})

    async def client_error(request: Request, exc: Exception) -> Response:
        if any(text in str(exc) for text in LOST_CONNECTION_STATES):
            return await database_down(request, exc)
        return await unexpected(request, exc)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", "Something went wrong on our side.", [])

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    for kind in DATABASE_DOWN:
        app.add_exception_handler(kind, database_down)
    app.add_exception_handler(asyncpg.exceptions.InternalClientError, client_error)
    app.add_exception_handler(Exception, unexpected)
