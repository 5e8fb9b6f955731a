"""The response envelope, request ids and rate-limit headers."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    reset: int  # epoch seconds when the window resets

    def meta(self) -> dict[str, Any]:
        reset_at = datetime.fromtimestamp(self.reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"limit": self.limit, "remaining": self.remaining, "reset": self.reset, "reset_at": reset_at}

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def rfc3339(value: datetime | None) -> str | None:
    """RFC 3339 UTC with a Z, seconds precision: ``2026-03-21T10:00:00Z``."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"  # %Y is not zero-padded before the year 1000


def request_id(request: Request[Any]) -> str:
    rid: str = request.scope.get("state", {}).get("request_id") or "req_unknown"
    return rid


def _meta(request: Request[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    meta: dict[str, Any] = {"request_id": request_id(request)}
    headers: dict[str, str] = {}
    limit: RateLimit | None = request.scope.get("state", {}).get("rate_limit")
    if limit is not None:
        meta["rate_limit"] = limit.meta()
        headers.update(limit.headers())
    return meta, headers


def _dumps(body: Any) -> bytes:
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # A lone surrogate echoed from the request (e.g. "\ud800") is not valid UTF-8; never let an
        # error response fail because of what it quotes.
        text = orjson.dumps(_replace_surrogates(body), option=orjson.OPT_NON_STR_KEYS)
        return text


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_surrogates(v) for v in value]
    return value


def ok(request: Request[Any], data: Any, status_code: int = 200, **meta_extra: Any) -> Response:
    """A success envelope: ``{"data": ..., "meta": {"request_id", "rate_limit", ...}}``."""
    meta, headers = _meta(request)
    meta.update(meta_extra)
    return Response(_dumps({"data": data, "meta": meta}), status_code, headers, media_type="application/json")


def error_response(
    request: Request[Any],
    status_code: int,
    code: str,
    message: str,
    details: Sequence[dict[str, str]],
    headers: dict[str, str] | None = None,
) -> Response:
    meta, extra = _meta(request)
    extra.update(headers or {})
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = list(details)
    return Response(_dumps({"error": error, "meta": meta}), status_code, extra, media_type="application/json")


class RequestIdMiddleware:
    """Gives every request an id (``req_…``) and echoes it as ``X-Request-Id``. Pure ASGI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = "req_" + secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``, by Content-Length or while streaming. Pure ASGI."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        mib = self.max_bytes / (1024 * 1024)
        response = error_response(
            request, 413, "payload_too_large", f"The request body is larger than {mib:g} MiB.", []
        )
        await response(scope, receive, send)


class _TooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so that FastAPI's body parsing re-raises it as is."""

    def __init__(self) -> None:
        super().__init__(413)
