"""HTTP routes for links: thin handlers over :mod:`api.links.service`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from api.auth import Principal, require
from api.envelope import RateLimit, ok
from api.fields import strict_json
from api.links import service
from api.links.objects import link_object
from api.links.qr import DEFAULT_SIZE, MAX_SIZE, MEDIA_TYPES, MIN_SIZE, QR_MARKER, render_qr
from api.links.responses import BulkEnvelope, DeletedEnvelope, LinkEnvelope, LinkListEnvelope, errors
from api.links.schemas import BulkCreate, LinkCreate, LinkUpdate
from api.openapi import BODY_ERRORS
from api.pagination import PageParams, page_params
from api.params import DomainFilter, Labels, Search
from api.state import ApiRequest

router = APIRouter(prefix="/links", tags=["links"], dependencies=[Depends(strict_json)])

Reader = Annotated[Principal, Depends(require("links:read"))]
Writer = Annotated[Principal, Depends(require("links:write"))]
Page = Annotated[PageParams, Depends(page_params)]


@router.post(
    "",
    status_code=201,
    summary="Create a link",
    responses={201: {"model": LinkEnvelope, "description": "The new link"}, **errors(402, 409, *BODY_ERRORS)},
)
async def create_link(body: LinkCreate, request: ApiRequest, principal: Writer) -> Response:
    """Create a short link to `url`, with a custom slug or a random 7-character code."""
    st = request.state
    row = await service.create_link(st["pg"], st["redis"], st["settings"], principal.team_id, principal.plan, body)
    return ok(request, link_object(row, st["settings"]), status_code=201)


@router.post(
    "/bulk",
    status_code=201,
    summary="Create up to 100 links",
    responses={
        201: {"model": BulkEnvelope, "description": "Created links and per-item errors"},
        **errors(*BODY_ERRORS),
    },
)
async def bulk_create(body: BulkCreate, request: ApiRequest, principal: Writer) -> Response:
    """Valid items are created; invalid ones are listed in `errors` by `index` (`conflict`,
    `validation_failed`, `plan_limit`). Always 201 when the body itself is well-formed."""
    st = request.state
    result = await service.create_many(
        st["pg"], st["redis"], st["settings"], principal.team_id, principal.plan, body.links
    )
    data = {
        "created": [link_object(row, st["settings"]) for row in result.created],
        "errors": [{"index": e.index, "error": e.error, "message": e.message} for e in result.errors],
    }
    return ok(request, data, status_code=201)


@router.get(
    "",
    summary="List links",
    responses={200: {"model": LinkListEnvelope, "description": "A page of links, newest first"}, **errors(422)},
)
async def list_links(
    request: ApiRequest,
    principal: Reader,
    page: Page,
    label: Labels = None,
    search: Search = None,
    domain: DomainFilter = None,
) -> Response:
    """Newest first; follow `meta.next_cursor` (null on the last page)."""
    labels = [x for x in label or () if x]  # ?label= (empty) means no filter
    settings = request.state["settings"]
    rows, cursor = await service.list_links(
        request.state["pg"], settings, principal.team_id, page, labels, search, domain
    )
    return ok(request, [link_object(r, settings) for r in rows], next_cursor=cursor)


@router.get(
    "/{link_id}",
    summary="Get a link",
    responses={200: {"model": LinkEnvelope, "description": "The link"}, **errors(404)},
)
async def get_link(link_id: str, request: ApiRequest, principal: Reader) -> Response:
    row = await service.get_link(request.state["pg"], principal.team_id, link_id)
    return ok(request, link_object(row, request.state["settings"]))


@router.patch(
    "/{link_id}",
    summary="Update a link",
    responses={200: {"model": LinkEnvelope, "description": "The updated link"}, **errors(404, 409, *BODY_ERRORS)},
)
async def update_link(link_id: str, body: LinkUpdate, request: ApiRequest, principal: Writer) -> Response:
    """Only the fields present change; `null` clears `expires_at`, `password`, `max_clicks`, `title`,
    `notes`, `utm`, `labels` and `routing_rules`. A new `custom_slug` frees the old code at once."""
    st = request.state
    row = await service.update_link(st["pg"], st["redis"], st["settings"], principal.team_id, link_id, body)
    return ok(request, link_object(row, st["settings"]))


@router.delete(
    "/{link_id}",
    summary="Delete a link",
    responses={200: {"model": DeletedEnvelope, "description": "The link is gone"}, **errors(404)},
)
async def delete_link(link_id: str, request: ApiRequest, principal: Writer) -> Response:
    """The short URL stops redirecting at once (404)."""
    st = request.state
    row = await service.delete_link(st["pg"], st["redis"], st["settings"], principal.team_id, link_id)
    return ok(request, {"id": str(row["id"]), "deleted": True})


@router.get(
    "/{link_id}/qr",
    summary="QR code of a link",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "The QR code image"},
        **errors(404, 422),
    },
)
async def link_qr(
    link_id: str,
    request: ApiRequest,
    principal: Reader,
    fmt: Annotated[Literal["svg", "png"], Query(alias="format", description="svg or png")] = "svg",
    size: Annotated[int, Query(ge=MIN_SIZE, le=MAX_SIZE, description="Pixels, quiet zone included.")] = DEFAULT_SIZE,
) -> Response:
    """An image, not JSON: the QR code of the link's short URL."""
    st = request.state
    row = await service.get_link(st["pg"], principal.team_id, link_id)
    # The marker tells a scan from a click (source qr); the edge drops it before redirecting.
    scan_url = st["settings"].serving.short_url(row["code"], row["domain_hostname"]) + QR_MARKER
    image = await asyncio.to_thread(render_qr, scan_url, fmt, size)
    headers = {"Content-Disposition": f'inline; filename="{row["code"]}.{fmt}"'}
    limit: RateLimit | None = request.scope.get("state", {}).get("rate_limit")
    if limit is not None:
        headers.update(limit.headers())
    return Response(image, media_type=MEDIA_TYPES[fmt], headers=headers)
