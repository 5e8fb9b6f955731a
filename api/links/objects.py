"""The link object the API returns, the destination a link's UTM fields produce, and the URLs it sends."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from api.envelope import rfc3339
from api.settings import Settings
from kit.postgres import Row

UTM_KEYS = ("source", "medium", "campaign", "term", "content")


def merge_utm(url: str, utm: Mapping[str, str]) -> str:
    """``url`` with ``utm_<key>=<value>`` set for every given key.

    A UTM parameter already in the URL is replaced; every other parameter is kept byte for byte,
    so a link without UTM fields redirects to exactly the URL it was given.
    """
    params = {f"utm_{k}": v for k, v in utm.items() if v and k in UTM_KEYS}
    if not params:
        return url
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and unquote_plus(p.partition("=")[0]) not in params]
    added = [f"{k}={quote(v, safe='')}" for k, v in params.items()]
    return urlunsplit(parts._replace(query="&".join(kept + added)))


def sent_urls(destination: str, rules: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """Every URL a link can send a visitor to, once each, in rule order: its ``destination`` (the
    default, UTM fields merged in, as the edge's record has it), then each rule's ``url`` and each
    split variant's. These are the URLs whose :func:`redirector.events.destination_id` the edge
    writes on a click (before a forwarded query is merged in)."""
    urls = [destination]
    for rule in rules or ():
        if "split" in rule:
            urls += [v["url"] for v in rule["split"]]
        elif "url" in rule:
            urls.append(rule["url"])
    return list(dict.fromkeys(urls))


def link_object(row: Row, settings: Settings) -> dict[str, Any]:
    """The public shape of a link (the seed's fields first, then ours); never the password hash."""
    hostname = row["domain_hostname"]
    return {
        "id": str(row["id"]),
        "short_url": settings.serving.short_url(row["code"], hostname),
        "short_code": row["code"],
        "destination": row["destination"],
        "enabled": row["enabled"],
        "labels": list(row["labels"]),
        "routing_rules": list(row["routing_rules"] or []),
        "scan_count": row["scan_count"],
        "last_scan_at": rfc3339(row["last_scan_at"]),
        "expires_at": rfc3339(row["expires_at"]),
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
        "redirect_type": row["redirect_type"],
        "forward_query": row["forward_query"],
        "max_clicks": row["max_clicks"],
        "password_protected": row["password_hash"] is not None,
        "title": row["title"],
        "notes": row["notes"],
        "utm": {k: row["utm"][k] for k in UTM_KEYS if k in (row["utm"] or {})},
        "domain": hostname or urlsplit(settings.public_base_url).hostname,
        "expired_url": row["expired_url"],
        "crawlable": row["crawlable"],
    }
