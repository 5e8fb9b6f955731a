"""Short-link redirects: status checks, rules, split cookie, forwarded query, click events.

Everything here works on the raw ASGI scope: the redirect is the hot path, and a cached hit
costs one dict lookup for the record, a cached UA lookup, one hash and two ``send`` calls.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote_plus, urlencode

from starlette.types import Receive

from redirector.cache import DomainRecord, LinkRecord
from redirector.events import CLICK, RULE_NONE, destination_id
from redirector.forms import FormTooLarge, rate_limited, read_form
from redirector.hit import Hit, utm_columns
from redirector.keys import clicks_key, password_limit_key
from redirector.passwords import verify_password
from redirector.resp.client import REDIS_ERRORS
from redirector.rules import resolve
from redirector.views import HTML, NO_STORE, PLAIN_CSP, password_form
from redirector.visitor import SPLIT_COOKIE_MAX_AGE, bucket_of, read_bucket, split_cookie_name

PRIVATE = b"private, max-age=0"
NOINDEX = (b"x-robots-tag", b"noindex")  # on every redirect of a link not marked crawlable
UNCOUNTED_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", NO_STORE))
UNCOUNTED_BODY = b"This link opens in a browser.\n"
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
PASSWORD_ATTEMPTS = 10  # wrong or right, per client address and link per minute
PASSWORD_CEILING = 100  # per link per minute, from all addresses together


def location(url: str) -> bytes:
    """A Location header value; non-ASCII destinations (IRIs) are percent-encoded, and so are
    control characters, which the API refuses but an old or hand-written record could still hold
    (sent raw, they are an invalid header and the connection would be dropped)."""
    if url.isascii() and url.isprintable():
        return url.encode("ascii")
    return quote(url, safe=_URL_SAFE).encode("ascii")


def merge_query(url: str, query_string: str) -> str:
    """Merge the short URL's query into ``url``; the short URL's values win, ``qr=1`` is dropped."""
    pairs = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if not (k == "qr" and v == "1")]
    if not pairs:
        return url
    base, hash_, fragment = url.partition("#")
    path, _, query = base.partition("?")
    incoming = {k for k, _ in pairs}
    kept = [p for p in query.split("&") if p and unquote_plus(p.partition("=")[0]) not in incoming]
    merged = "&".join([*kept, urlencode(pairs)])
    return f"{path}?{merged}{hash_}{fragment}"


async def over_limit(hit: Hit, record: LinkRecord, counted: bool) -> bool:
    """``max_clicks``: a counted click takes a slot (INCR), anything else only looks (GET).

    Redis being down fails open: the link keeps working rather than erroring.
    """
    assert record.max_clicks is not None
    key = clicks_key(hit.edge.settings.key_prefix, record.id)
    try:
        if counted:
            return int(await hit.edge.store.execute("INCR", key)) > record.max_clicks
        value = await hit.edge.store.get(key)
    except REDIS_ERRORS:
        hit.edge.metrics.redis_errors += 1
        return False
    return value is not None and int(value) >= record.max_clicks


async def redirect_link(
    hit: Hit,
    record: LinkRecord | None,
    *,
    counted: bool,
    status: int | None = None,
    page_id: str = "",
    block_id: str = "",
    site: DomainRecord | None = None,
) -> None:
    """Answer for one link record: 404/410, or the redirect (counting it when ``counted``).

    ``counted`` is false for HEAD and prefetches; bots are redirected and counted with ``bot=1``,
    except on links with ``max_clicks``: there only a counted human click gets the ``Location``.
    ``status`` overrides the record's (303 after a password POST). ``site`` is the team domain the
    request came in on (None: the service's own), whose ``expired_url`` stands in for a 410.
    """
    if record is None or not record.enabled:
        return await hit.fail(404)
    if record.expires_at is not None and record.expires_at <= hit.now:
        return await gone(hit, record, site)
    if record.max_clicks is not None:
        counts = counted and not hit.agent.bot
        if await over_limit(hit, record, counts):
            return await gone(hit, record, site, "This link has reached its click limit.")
        if not counts:
            # A capped destination goes only to requests that use up a click: HEAD, prefetches
            # and bots would otherwise read it for free, as often as they like.
            return await hit.respond(200, UNCOUNTED_HEADERS, UNCOUNTED_BODY)
    headers = [(b"cache-control", PRIVATE)] if record.crawlable else [(b"cache-control", PRIVATE), NOINDEX]
    url = record.url
    rule = variant = ""
    if record.rules:
        cookie_name, cookie_bucket, bucket = "", None, 0
        if any(rule.is_split for rule in record.rules):
            cookie_name = split_cookie_name(record.id)
            cookie_bucket = read_bucket(hit.header(b"cookie"), cookie_name)
            bucket = cookie_bucket if cookie_bucket is not None else bucket_of(hit.visitor)
        resolution = resolve(record.rules, hit.facts(bucket), record.url)
        url = resolution.url
        rule = RULE_NONE if resolution.rule is None else str(resolution.rule)
        if resolution.variant is not None:
            variant = f"{rule}.{resolution.variant}"
            if cookie_bucket is None:
                cookie = f"{cookie_name}={bucket}; Max-Age={SPLIT_COOKIE_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax"
                headers.append((b"set-cookie", cookie.encode()))
    destination = destination_id(url)
    if record.forward_query:
        qs = hit.scope.get("query_string", b"")
        if qs:
            url = merge_query(url, qs.decode("latin-1"))
    headers.append((b"location", location(url)))
    if counted:
        source = "bio" if page_id else ""
        domain_id = site.id if site is not None else ""
        hit.emit(
            CLICK,
            record.team_id,
            link_id=record.id,
            page_id=page_id,
            block_id=block_id,
            source=source,
            domain_id=domain_id,
            rule=rule,
            variant=variant,
            destination=destination,
            utm=utm_columns(url),
        )
    hit.edge.metrics.redirects += 1
    await hit.respond(status or record.status, headers)


async def gone(hit: Hit, record: LinkRecord, site: DomainRecord | None, message: str | None = None) -> None:
    """An expired or used-up link: to its ``expired_url``, else its domain's, else 410."""
    fallback = record.expired_url or (site.expired_url if site is not None else None)
    if fallback is None:
        return await hit.fail(410, message)
    await fallback_redirect(hit, fallback)


async def fallback_redirect(hit: Hit, url: str) -> None:
    """A 302 to a configured fallback (not a click of any link, so nothing is counted)."""
    await hit.respond(302, [(b"cache-control", PRIVATE), NOINDEX, (b"location", location(url))])


async def serve_code(hit: Hit, code: str, site: DomainRecord | None = None, ref: str | None = None) -> None:
    """``GET|HEAD /{code}``: the redirect, or the password form of a protected link.

    ``ref`` is the link's name in the cache (``{domain id}/{code}`` on a team domain, ``site``).
    """
    record = await hit.edge.link(code if ref is None else ref)
    if record is not None and record.password_hash is not None and live(record, hit.now):
        return await send_password_form(hit, code)
    counted = hit.scope["method"] == "GET" and not hit.prefetch
    await redirect_link(hit, record, counted=counted, site=site)


def live(record: LinkRecord, now: float) -> bool:
    return record.enabled and (record.expires_at is None or record.expires_at > now)


async def send_password_form(hit: Hit, code: str, *, failed: bool = False) -> None:
    headers = [(b"content-type", HTML), (b"cache-control", NO_STORE), (b"content-security-policy", PLAIN_CSP)]
    await hit.respond(401 if failed else 200, headers, password_form("/" + quote(code, safe=""), failed))


async def password_post(
    hit: Hit, receive: Receive, code: str, site: DomainRecord | None = None, ref: str | None = None
) -> None:
    """``POST /{code}``: check the password, then redirect with 303.

    Attempts are limited per client address (as established through ``TRUSTED_PROXIES``) and link,
    not per visitor hash: that hash includes the User-Agent, which a guesser can rotate. A per-link
    ceiling bounds guesses spread over many addresses. Both are checked before the PBKDF2 work,
    which runs in a worker thread, off the event loop.
    """
    record = await hit.edge.link(code if ref is None else ref)
    if record is None or record.password_hash is None or not live(record, hit.now):
        return await redirect_link(hit, record, counted=False, status=303, site=site)
    try:
        form = await read_form(receive)
    except FormTooLarge:
        return await hit.fail(413)
    prefix = hit.edge.settings.key_prefix
    limits = [
        (password_limit_key(prefix, record.id, hit.ip), PASSWORD_ATTEMPTS),
        (password_limit_key(prefix, record.id, "*"), PASSWORD_CEILING),
    ]
    if await rate_limited(hit.edge, limits):
        return await hit.fail(429, extra=[(b"retry-after", b"60")])
    if not await verify_password(record.password_hash, form.get("password", "")):
        return await send_password_form(hit, code, failed=True)
    # 303: the browser follows with a GET, whatever the link's own status (307/308 would re-POST).
    await redirect_link(hit, record, counted=True, status=303, site=site)
