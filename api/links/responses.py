"""Response shapes, for the OpenAPI document only: handlers build their bodies with api.envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


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


class LinkOut(BaseModel):
    id: UUID
    short_url: str = Field(examples=["https://sho.rt/summer24"])
    short_code: str
    destination: str = Field(description="Where the link redirects (UTM fields merged in).")
    enabled: bool
    labels: list[str]
    routing_rules: list[dict[str, Any]]
    scan_count: int
    last_scan_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    redirect_type: int
    forward_query: bool
    max_clicks: int | None
    password_protected: bool
    title: str | None
    notes: str | None
    utm: dict[str, str]


class LinkEnvelope(BaseModel):
    data: LinkOut
    meta: Meta


class LinkListEnvelope(BaseModel):
    data: list[LinkOut]
    meta: ListMeta


class BulkError(BaseModel):
    index: int
    error: str = Field(description="conflict, validation_failed or plan_limit")
    message: str


class BulkData(BaseModel):
    created: list[LinkOut]
    errors: list[BulkError]


class BulkEnvelope(BaseModel):
    data: BulkData
    meta: Meta


class Deleted(BaseModel):
    id: UUID
    deleted: bool


class DeletedEnvelope(BaseModel):
    data: Deleted
    meta: Meta


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


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    text = {
        400: "Malformed JSON",
        401: "Missing, invalid or revoked API key",
        402: "Plan limit reached",
        403: "The key lacks the ability",
        404: "No such link in this team",
        409: "Slug already in use",
        413: "Body larger than 1 MiB",
        422: "Validation failed; details name the fields",
        429: "Rate limited; see Retry-After",
    }
    return {code: {"model": ErrorEnvelope, "description": text[code]} for code in (401, 403, 429, *codes)}
