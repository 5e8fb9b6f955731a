"""HTTP routes for domains: thin handlers over :mod:`api.domains.service`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from api.auth import Principal, require
from api.domains import service
from api.domains.objects import DeletedDomainEnvelope, DomainEnvelope, DomainListEnvelope, domain_object
from api.domains.schemas import DomainCreate, DomainUpdate
from api.envelope import ok, rfc3339
from api.fields import strict_json
from api.freshness import freshness
from api.openapi import BODY_ERRORS, error_responses
from api.pagination import PageParams, page_params
from api.params import Interval, WindowParams
from api.state import ApiRequest
from api.stats.responses import ok_response
from api.stats.window import parse_window

router = APIRouter(prefix="/domains", tags=["domains"], dependencies=[Depends(strict_json)])

Reader = Annotated[Principal, Depends(require("domains:read"))]
Writer = Annotated[Principal, Depends(require("domains:write"))]
Analyst = Annotated[Principal, Depends(require("domains:read"))]
Page = Annotated[PageParams, Depends(page_params)]


def errors(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    return error_responses(*codes, e404="No such domain in this team", **descriptions)


def ctx(request: ApiRequest) -> service.Ctx:
    return service.Ctx(request.state["pg"], request.state["redis"], request.state["settings"])


@router.post(
    "",
    status_code=201,
    summary="Add a domain",
    responses={
        201: {"model": DomainEnvelope, "description": "The new domain, with the DNS records to create"},
        **errors(402, 409, *BODY_ERRORS, e409="The team has it, or another team has verified it"),
    },
)
async def create_domain(body: DomainCreate, request: ApiRequest, principal: Writer) -> Response:
    """Add a hostname you control. It serves nothing until `POST /domains/{id}/verify` finds the TXT
    record named in `dns_records`."""
    row = await service.create_domain(ctx(request), principal.team_id, principal.plan, body)
    return ok(request, domain_object(row, request.state["settings"]), status_code=201)


@router.get(
    "",
    summary="List domains",
    responses={200: {"model": DomainListEnvelope, "description": "A page of domains, newest first"}, **errors(422)},
)
async def list_domains(request: ApiRequest, principal: Reader, page: Page) -> Response:
    rows, cursor = await service.list_domains(request.state["pg"], principal.team_id, page)
    settings = request.state["settings"]
    return ok(request, [domain_object(r, settings) for r in rows], next_cursor=cursor)


@router.get(
    "/{domain_id}",
    summary="Get a domain",
    responses={200: {"model": DomainEnvelope, "description": "The domain"}, **errors(404)},
)
async def get_domain(domain_id: str, request: ApiRequest, principal: Reader) -> Response:
    row = await service.get_domain(request.state["pg"], principal.team_id, domain_id)
    return ok(request, domain_object(row, request.state["settings"]))


@router.patch(
    "/{domain_id}",
    summary="Update a domain's settings",
    responses={200: {"model": DomainEnvelope, "description": "The updated domain"}, **errors(404, *BODY_ERRORS)},
)
async def update_domain(domain_id: str, body: DomainUpdate, request: ApiRequest, principal: Writer) -> Response:
    """Only the fields present change; `null` clears a fallback URL or a deep-link file. Every edge
    serves the change within a second."""
    row = await service.update_domain(ctx(request), principal.team_id, domain_id, body)
    return ok(request, domain_object(row, request.state["settings"]))


@router.delete(
    "/{domain_id}",
    summary="Delete a domain",
    responses={
        200: {"model": DeletedDomainEnvelope, "description": "The domain is gone"},
        **errors(404, 409, 422, e409="Links are still on the domain (use ?force=true)"),
    },
)
async def delete_domain(
    domain_id: str,
    request: ApiRequest,
    principal: Writer,
    force: Annotated[bool, Query(description="Disable the domain's links and delete it anyway.")] = False,
) -> Response:
    """The domain stops serving at once. While links are on it this is a 409 saying how many;
    `?force=true` disables them first (they stay, disabled, until moved or deleted)."""
    row = await service.delete_domain(ctx(request), principal.team_id, domain_id, force=force)
    return ok(request, {"id": str(row["id"]), "deleted": True})


@router.post(
    "/{domain_id}/verify",
    summary="Verify a domain's ownership",
    responses={
        200: {"model": DomainEnvelope, "description": "The domain, verified"},
        **errors(
            404,
            409,
            422,
            e409="Another team has verified this hostname",
            e422="The TXT record is missing or holds another value",
            e503="The DNS resolver did not answer; retry after Retry-After seconds",
        ),
    },
)
async def verify_domain(domain_id: str, request: ApiRequest, principal: Writer) -> Response:
    """Looks up the TXT record `_linkedge-challenge.<hostname>`; on a match the domain is verified and
    serves within a second. Verifying a verified domain answers it as it is."""
    resolver = request.state["resolver"]
    row = await service.verify_domain(ctx(request), resolver, principal.team_id, domain_id)
    return ok(request, domain_object(row, request.state["settings"]))


@router.get(
    "/{domain_id}/stats",
    summary="Orphan visits of a domain",
    responses={**ok_response("The domain's orphan visits; meta says how fresh they are"), **errors(404, 422)},
)
async def domain_stats(
    domain_id: str, request: ApiRequest, principal: Analyst, query: WindowParams, interval: Interval = None
) -> Response:
    """Visits that reached no link (Shlink's "orphan visits"), bots aside: `root` (the domain's `/`,
    unless a bio page is shown there) and `not_found` (a code the domain does not have), over the
    window (the same `from`/`to`/`tz` as link stats, clamped to the plan's retention)."""
    pg = request.state["pg"]
    row = await service.get_domain(pg, principal.team_id, domain_id)
    window = parse_window(principal.plan, query, interval)
    fresh = await freshness(
        pg, request.state["redis"], request.state["settings"].key_prefix, request.state["settings"].event_shards
    )  # before the counters
    counts = await service.orphan_visits(pg, row["id"], window.start, window.end)
    data = {
        "domain_id": str(row["id"]),
        "hostname": row["hostname"],
        "from": rfc3339(window.start),
        "to": rfc3339(window.end),
        "orphan_visits": {**counts, "total": sum(counts.values())},
    }
    return ok(request, data, **fresh.meta())
