"""Response shapes, for the OpenAPI document only: handlers build their bodies with api.envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from api.openapi import ErrorEnvelope, ListMeta, Meta, RateLimitMeta, error_responses

__all__ = ["ErrorEnvelope", "ListMeta", "Meta", "RateLimitMeta", "errors"]


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
    domain: str = Field(description="The link's domain (the service's own unless on one of the team's).")
    expired_url: str | None
    crawlable: bool


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


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a link route can answer."""
    return error_responses(*codes, e404="No such link in this team", e409="Slug already in use")
