"""Requests on a team's own domain: its links, its root, its fallbacks, robots.txt and deep-link files.

The host has been resolved to the domain's :class:`~redirector.cache.DomainRecord` (verified and
live, or there would be none). Its links are cached under ``{domain id}/{code}``, so a code of the
service's domain or of another team's never answers here. Visits that reach no link (the root
without a bio page, a code the domain lacks) are counted as orphan visits and go to the domain's
``root_url`` / ``not_found_url`` when set, else 404. Bio pages answer only when the domain serves
bio pages and the page is the domain team's own.
"""

from __future__ import annotations

from starlette.types import Receive

from redirector.cache import DomainRecord
from redirector.events import ORPHAN, ORPHAN_NOT_FOUND, ORPHAN_ROOT
from redirector.hit import Hit
from redirector.links import fallback_redirect, live, password_post, redirect_link, send_password_form
from redirector.pages import NOT_FOUND, NOT_FOUND_TITLE, block_click, form_post, serve_page
from redirector.views import JSON

ROBOTS_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"public, max-age=300")]
FILE_HEADERS = [(b"content-type", JSON), (b"cache-control", b"public, max-age=300")]
AASA = "/.well-known/apple-app-site-association"
ASSETLINKS = "/.well-known/assetlinks.json"


class _Unknown:
    __slots__ = ()


UNKNOWN = _Unknown()  # a host that is neither the service's nor a verified team domain


def host_name(hit: Hit) -> str:
    """The request's canonical hostname (:data:`~redirector.edge.PLATFORM` for the service's own).

    Behind trusted proxies with ``FORWARDED_HOST`` on, ``X-Forwarded-Host`` names it.
    """
    header = hit.headers.get(b"host", b"")
    if hit.edge.settings.forwarded_host:
        forwarded = hit.headers.get(b"x-forwarded-host")
        if forwarded and hit.from_proxy():
            header = forwarded.split(b",")[0].strip()
    return hit.edge.hostname(header)


async def site_of(hit: Hit, name: str) -> DomainRecord | _Unknown | None:
    """The team domain ``name`` (from :func:`host_name`, not PLATFORM), else ``None`` when unknown
    hosts are served as the service's own (``UNKNOWN_HOSTS=platform``), else :data:`UNKNOWN`."""
    site = await hit.edge.domain(name)
    if site is not None:
        return site
    return None if hit.edge.settings.unknown_hosts == "platform" else UNKNOWN


async def unknown_host(hit: Hit) -> None:
    """A host no team has verified: 404, or the configured ``UNKNOWN_HOSTS`` URL."""
    policy = hit.edge.settings.unknown_hosts
    if policy.startswith(("http://", "https://")):
        return await fallback_redirect(hit, policy)
    await hit.fail(404)


def _counted(hit: Hit) -> bool:
    return hit.scope["method"] == "GET" and not hit.prefetch


async def orphan(hit: Hit, site: DomainRecord, kind: str, fallback: str | None) -> None:
    """A visit that reached no link: counted (GETs only), then the fallback or a 404."""
    if _counted(hit):
        hit.emit(ORPHAN, site.team_id, extra=kind, domain_id=site.id)
    if fallback is not None:
        return await fallback_redirect(hit, fallback)
    await hit.fail(404)


async def site_code(hit: Hit, receive: Receive, site: DomainRecord, code: str) -> None:
    """``/{code}`` on a team domain (GET, HEAD, and POST for a password)."""
    if not site.links:
        return await orphan(hit, site, ORPHAN_NOT_FOUND, site.not_found_url)
    ref = f"{site.id}/{code}"
    if hit.scope["method"] == "POST":
        return await password_post(hit, receive, code, site, ref)
    record = await hit.edge.link(ref)
    if record is None or not record.enabled or record.team_id != site.team_id:
        return await orphan(hit, site, ORPHAN_NOT_FOUND, site.not_found_url)
    if record.password_hash is not None and live(record, hit.now):
        return await send_password_form(hit, code)
    await redirect_link(hit, record, counted=_counted(hit), site=site)


async def site_root(hit: Hit, site: DomainRecord) -> None:
    """``/``: the domain's bio page, else an orphan visit to ``root_url`` (or 404)."""
    if site.bio and site.page_handle is not None:
        return await serve_page(hit, site.page_handle)
    await orphan(hit, site, ORPHAN_ROOT, site.root_url)


async def own_page(hit: Hit, site: DomainRecord, handle: str) -> bool:
    """Whether ``/@{handle}`` may be shown on this domain: it serves bio pages and the page is its team's."""
    if not site.bio:
        return False
    page = await hit.edge.page(handle)
    return page is not None and page.team_id == site.team_id


async def site_page(hit: Hit, site: DomainRecord, handle: str) -> None:
    if not await own_page(hit, site, handle):
        return await hit.fail(404, NOT_FOUND, title=NOT_FOUND_TITLE)
    await serve_page(hit, handle)


async def site_block(hit: Hit, site: DomainRecord, handle: str, block_id: str) -> None:
    if not await own_page(hit, site, handle):
        return await hit.fail(404, NOT_FOUND, title=NOT_FOUND_TITLE)
    await block_click(hit, handle, block_id)


async def site_form(hit: Hit, receive: Receive, site: DomainRecord, handle: str, block_id: str) -> None:
    if not await own_page(hit, site, handle):
        return await hit.fail(404, "This form does not exist.", title=NOT_FOUND_TITLE)
    await form_post(hit, receive, handle, block_id)


async def site_robots(hit: Hit, site: DomainRecord) -> None:
    """robots.txt, rendered by the API: everything disallowed but the crawlable links."""
    await hit.respond(200, ROBOTS_HEADERS, site.robots)


async def site_file(hit: Hit, site: DomainRecord, path: str) -> None:
    """The domain's apple-app-site-association or assetlinks.json, as the team stored it."""
    body = site.aasa if path == AASA else site.assetlinks
    if body is None:
        return await hit.fail(404)
    await hit.respond(200, FILE_HEADERS, body)
