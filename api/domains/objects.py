"""The domain object the API returns, and its shape for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import BaseModel, Field

from api.domains.dns import challenge_name
from api.envelope import rfc3339
from api.openapi import ListMeta, Meta
from api.settings import Settings
from kit.postgres import Row


def dns_records(row: Row, settings: Settings) -> list[dict[str, str]]:
    """What the team creates at its DNS provider: the ownership proof, and where the name points."""
    records = [{"type": "TXT", "name": challenge_name(row["hostname"]), "value": row["challenge_token"]}]
    edge_host = urlsplit(settings.public_base_url).hostname or ""
    records.append({"type": "CNAME", "name": row["hostname"], "value": edge_host})
    return records


def domain_object(row: Row, settings: Settings) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "hostname": row["hostname"],
        "kind": row["kind"],
        "verified": row["verified_at"] is not None,
        "verified_at": rfc3339(row["verified_at"]),
        "dns_records": dns_records(row, settings),
        "root_url": row["root_url"],
        "not_found_url": row["not_found_url"],
        "expired_url": row["expired_url"],
        "apple_app_site_association": row["apple_app_site_association"],
        "assetlinks": row["assetlinks"],
        "links_count": row["links_count"],
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
    }


class DnsRecord(BaseModel):
    type: Literal["TXT", "CNAME"]
    name: str
    value: str


class DomainOut(BaseModel):
    id: UUID
    hostname: str = Field(examples=["go.example.com"])
    kind: Literal["links", "bio", "both"]
    verified: bool = Field(description="Only a verified domain serves anything.")
    verified_at: datetime | None
    dns_records: list[DnsRecord] = Field(
        description="Create these at your DNS provider: the TXT proves ownership, the CNAME sends visitors here."
    )
    root_url: str | None
    not_found_url: str | None
    expired_url: str | None
    apple_app_site_association: dict[str, Any] | None
    assetlinks: list[Any] | None
    links_count: int
    created_at: datetime
    updated_at: datetime


class DomainEnvelope(BaseModel):
    data: DomainOut
    meta: Meta


class DomainListEnvelope(BaseModel):
    data: list[DomainOut]
    meta: ListMeta


class DeletedDomain(BaseModel):
    id: UUID
    deleted: bool


class DeletedDomainEnvelope(BaseModel):
    data: DeletedDomain
    meta: Meta
