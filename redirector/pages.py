"""Bio pages on the edge: the pre-rendered page, block clicks and form submissions.

The API renders each page's HTML at write time and stores it with its ETag; the edge only
looks the record up, answers 304 when the browser has it, and counts the view.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.types import Receive

from redirector.cache import FRAME_HOSTS, PageRecord
from redirector.events import BLOCK_CLICK, FORM, VIEW, destination_id
from redirector.forms import FormTooLarge, rate_limited, read_form, valid_email
from redirector.hit import Hit, utm_columns
from redirector.keys import form_limit_key
from redirector.links import live, location, redirect_link
from redirector.rules import is_http_url
from redirector.views import HTML, JSON, with_banner

PAGE_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    f"frame-src {' '.join(FRAME_HOSTS)}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
).encode()
PAGE_HEADERS = [
    (b"content-type", HTML),
    (b"content-security-policy", PAGE_CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    # Browsers keep the page but ask again each time; the ETag makes that a 304.
    (b"cache-control", b"no-cache"),
]
FORM_LIMIT = 5  # submissions per client address and form block per minute
FORM_CEILING = 600  # submissions per form block per minute, from all addresses together
MAX_FIELDS = 10
MAX_FIELD_NAME = 40
MAX_FIELD_VALUE = 2000
NOT_FOUND_TITLE = "Page not found"
NOT_FOUND = "This page does not exist or is not published."


def quoted_etag(etag: str) -> bytes:
    if etag.startswith(('"', 'W/"')):
        return etag.encode("latin-1", "replace")
    return f'"{etag}"'.encode("latin-1", "replace")


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """Weak comparison, as RFC 9110 asks for If-None-Match."""
    if if_none_match.strip() == b"*":
        return True
    bare = etag.removeprefix(b"W/")
    return any(tag.strip().removeprefix(b"W/") == bare for tag in if_none_match.split(b","))


def page_path(hit: Hit, handle: str) -> str:
    """Where the page lives for this request: ``/{handle}`` on the bio host, else ``/@{handle}``."""
    path: str = hit.scope["path"]
    handle = quote(handle, safe="")
    return f"/@{handle}" if path.startswith("/@") else f"/{handle}"


async def serve_page(hit: Hit, handle: str) -> None:
    """``GET|HEAD /@{handle}`` (and ``/{handle}`` on the bio host)."""
    record = await hit.edge.page(handle)
    if record is None:
        return await hit.fail(404, NOT_FOUND, title=NOT_FOUND_TITLE)
    if hit.scope["method"] == "GET" and not hit.prefetch:
        hit.emit(VIEW, record.team_id, page_id=record.id)
    etag = quoted_etag(record.etag)
    if hit.query.get("submitted") == "1":
        # After a form post: the same page with a confirmation, not cached under the page's ETag.
        return await hit.respond(200, PAGE_HEADERS, with_banner(record.html))
    headers = [*PAGE_HEADERS, (b"etag", etag)]
    if_none_match = hit.headers.get(b"if-none-match")
    if if_none_match and etag_matches(if_none_match, etag):
        return await hit.respond(304, headers)
    await hit.respond(200, headers, record.html)


async def block_click(hit: Hit, handle: str, block_id: str) -> None:
    """``GET /@{handle}/b/{block_id}``: through the block's short link, or straight to its URL."""
    page = await hit.edge.page(handle)
    if page is None:
        return await hit.fail(404, NOT_FOUND, title=NOT_FOUND_TITLE)
    counted = hit.scope["method"] == "GET" and not hit.prefetch
    code = page.block_links.get(block_id)
    target = page.blocks.get(block_id)
    if code is None and target is not None and not is_http_url(target):
        code = target  # a block may name its short code in ``blocks`` too
    if code is not None:
        return await link_block(hit, page, block_id, code, counted)
    if target is None:
        return await hit.fail(404, "This block does not exist.")
    if counted:
        hit.emit(
            BLOCK_CLICK,
            page.team_id,
            page_id=page.id,
            block_id=block_id,
            source="bio",
            destination=destination_id(target),
            utm=utm_columns(target),
        )
    hit.edge.metrics.redirects += 1
    await hit.respond(302, [(b"cache-control", b"private, max-age=0"), (b"location", location(target))])


async def link_block(hit: Hit, page: PageRecord, block_id: str, code: str, counted: bool) -> None:
    record = await hit.edge.link(code)
    if record is not None and record.password_hash is not None and live(record, hit.now):
        # The password form lives on the short URL; the click is counted when it is passed.
        headers = [(b"cache-control", b"private, max-age=0"), (b"location", ("/" + quote(code, safe="")).encode())]
        return await hit.respond(302, headers)
    await redirect_link(hit, record, counted=counted, page_id=page.id, block_id=block_id)


async def form_post(hit: Hit, receive: Receive, handle: str, block_id: str) -> None:
    """``POST /@{handle}/f/{block_id}``: validate, rate limit, emit a FORM event.

    Limited per client address and form block (not per visitor hash, whose User-Agent part a
    sender can rotate), with a ceiling per block for many addresses together.
    """
    page = await hit.edge.page(handle)
    if page is None or block_id not in page.forms:
        return await hit.fail(404, "This form does not exist.", title=NOT_FOUND_TITLE)
    content_type = hit.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != b"application/x-www-form-urlencoded":
        return await hit.fail(415)
    try:
        form = await read_form(receive)
    except FormTooLarge:
        return await hit.fail(413)
    fields, problem = clean_fields(form)
    if problem:
        return await hit.fail(422, problem)
    prefix = hit.edge.settings.key_prefix
    limits = [
        (form_limit_key(prefix, block_id, hit.ip), FORM_LIMIT),
        (form_limit_key(prefix, block_id, "*"), FORM_CEILING),
    ]
    if await rate_limited(hit.edge, limits):
        return await hit.fail(429, "Too many submissions. Try again in a minute.", extra=[(b"retry-after", b"60")])
    extra = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    hit.emit(FORM, page.team_id, page_id=page.id, block_id=block_id, source="bio", extra=extra)
    if b"json" in hit.accept and b"html" not in hit.accept:
        return await hit.respond(201, [(b"content-type", JSON)], b'{"data":{"submitted":true}}')
    back = f"{page_path(hit, handle)}?submitted=1"
    await hit.respond(303, [(b"location", location(back)), (b"cache-control", b"no-store")])


def clean_fields(form: dict[str, str]) -> tuple[dict[str, str], str]:
    """The submitted fields (``email`` required and valid), or a message saying what is wrong."""
    fields: dict[str, str] = {}
    for name, value in form.items():
        if name.startswith("_") or not value.strip():
            continue  # framework fields and empty optional inputs
        if len(name) > MAX_FIELD_NAME or len(fields) >= MAX_FIELDS:
            return {}, "Too many or oversized fields."
        if len(value) > MAX_FIELD_VALUE:
            return {}, f"The field {name[:MAX_FIELD_NAME]} is too long (at most {MAX_FIELD_VALUE} characters)."
        fields[name] = value.strip()
    email = fields.get("email", "")
    if not email:
        return {}, "Enter your email address."
    if not valid_email(email):
        return {}, "Enter a valid email address."
    return fields, ""
