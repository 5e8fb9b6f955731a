"""Block validation and the replace-the-set semantics shared by both API shapes.

A request's blocks are checked against the page's stored blocks (an ``id`` must be one of them,
absent fields keep their stored value), type by type, and only then written: every problem is
reported at once, naming the field (``blocks[2].link_id``, ``page_data.links[0].url``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from api.bio import queries
from api.bio.schemas import BlockIn, LinkItemIn, check_image_url, check_url
from api.errors import ValidationFailed
from api.serving.embeds import PROVIDERS
from api.serving.queries import blocks_of
from kit.postgres import Conn, Row

Detail = dict[str, str]
FORM_FIELDS = ("email", "name", "message")
URL_REQUIRED = {"social", "embed", "image"}


def parse_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _config_problems(kind: str, config: dict[str, Any]) -> list[tuple[str, str]]:
    """(config key, message) pairs for a block type's config; normalises ``href`` in place, so what
    is stored is what was checked."""
    out: list[tuple[str, str]] = []

    def text(key: str, limit: int) -> None:
        value = config.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            out.append((key, f"must be a string of at most {limit} characters"))

    if kind == "image":
        for key in ("width", "height"):
            value = config.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10000):
                out.append((key, "must be an integer between 1 and 10000"))
        text("alt", 300)
        href = config.get("href")
        if href is not None:
            try:
                if not isinstance(href, str):
                    raise ValueError("must be an absolute http(s) URL")
                config["href"] = check_url(href)
            except ValueError as e:
                out.append(("href", str(e)))
    elif kind == "embed":
        provider = config.get("provider")
        if provider is not None and provider not in PROVIDERS:
            out.append(("provider", f"must be one of {', '.join(PROVIDERS)}"))
    elif kind == "form":
        fields = config.get("fields")
        if fields is not None and (
            not isinstance(fields, list)
            or not fields
            or any(f not in FORM_FIELDS for f in fields)
            or len(set(fields)) != len(fields)
            or "email" not in fields
        ):
            out.append(("fields", f"must be a list of distinct names from {', '.join(FORM_FIELDS)}, with email"))
        text("button_text", 40)
        text("success_message", 200)
    elif kind == "text":
        text("text", 2000)
    return out


def _merged(index: int, block: BlockIn, stored: Row | None) -> dict[str, Any]:
    """The block's columns after applying the request over its stored values (or the defaults)."""
    given = block.model_fields_set
    cols: dict[str, Any] = {
        "type": stored["type"] if stored else None,
        "label": stored["label"] if stored else "",
        "url": stored["url"] if stored else None,
        "link_id": stored["link_id"] if stored else None,
        "icon": stored["icon"] if stored else None,
        "sort_order": stored["sort_order"] if stored else index,
        "is_active": stored["is_active"] if stored else True,
        "config": dict(stored["config"]) if stored else {},
    }
    defaults = {"label": "", "sort_order": index, "is_active": True, "config": {}}
    for name in ("type", "label", "url", "link_id", "icon", "sort_order", "is_active", "config"):
        if name in given:
            value = getattr(block, name)
            cols[name] = defaults.get(name) if value is None and name in defaults else value
    return cols


def _problems(cols: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) pairs for one merged block; parses ``link_id`` in place."""
    out: list[tuple[str, str]] = []
    kind = cols["type"]
    if kind is None:
        return [("type", "is required for a new block")]
    link_id = cols["link_id"]
    if link_id is not None:
        parsed = parse_uuid(link_id)
        if kind != "link":
            out.append(("link_id", "is only allowed on link blocks"))
            parsed = None
        elif parsed is None:
            out.append(("link_id", "is not the id of a short link of your team"))
        cols["link_id"] = parsed
    url = cols["url"]
    if kind == "link" and url is None and link_id is None:
        out.append(("url", "is required for a link block (or set link_id)"))
    if kind in URL_REQUIRED and url is None:
        out.append(("url", f"is required for a {kind} block"))
    if kind == "image" and url is not None:
        try:
            check_image_url(url)
        except ValueError as e:
            out.append(("url", str(e)))
    out.extend((f"config.{key}", msg) for key, msg in _config_problems(kind, cols["config"]))
    return out


async def replace_blocks(
    conn: Conn, team_id: uuid.UUID, page_id: uuid.UUID, items: Sequence[tuple[str, BlockIn]]
) -> None:
    """Make ``items`` the page's block set, in the caller's transaction.

    Each item is ``(field name for errors, block)``. A block with an id updates that block in place
    (an id that is not one of this page's blocks is a 422); without one it is created; stored blocks
    not named are deleted.
    """
    stored = {b["id"]: b for b in (await blocks_of(conn, [page_id]))[page_id]}
    errors: list[Detail] = []
    planned: list[tuple[uuid.UUID | None, str, dict[str, Any]]] = []
    seen: set[uuid.UUID] = set()
    for index, (name, block) in enumerate(items):
        current: asyncpg.Record | None = None
        block_id: uuid.UUID | None = None
        if block.id is not None:
            block_id = parse_uuid(block.id)
            if block_id is None or block_id not in stored:
                errors.append({"field": f"{name}.id", "message": "is not the id of a block of this page"})
                continue
            if block_id in seen:
                errors.append({"field": f"{name}.id", "message": "appears more than once"})
                continue
            seen.add(block_id)
            current = stored[block_id]
        cols = _merged(index, block, current)
        problems = _problems(cols)
        errors.extend({"field": f"{name}.{field}", "message": msg} for field, msg in problems)
        planned.append((block_id, name, cols))
    wanted = {cols["link_id"]: name for _, name, cols in planned if isinstance(cols["link_id"], uuid.UUID)}
    owned = await queries.team_links(conn, team_id, wanted)
    for _, name, cols in planned:
        if isinstance(cols["link_id"], uuid.UUID) and cols["link_id"] not in owned:
            errors.append({"field": f"{name}.link_id", "message": "is not the id of a short link of your team"})
    if errors:
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"Invalid value for {fields}.", details=errors)
    await queries.delete_blocks_except(conn, page_id, seen)
    for block_id, _, cols in planned:
        if block_id is None:
            await queries.insert_block(conn, uuid.uuid4(), page_id, cols)
        else:
            await queries.update_block(conn, block_id, cols)


def links_as_blocks(
    stored: Sequence[Row], links: Sequence[LinkItemIn], field: str = "page_data.links"
) -> list[tuple[str, BlockIn]]:
    """The page-data shape's ``links`` as a full block set: the active link blocks are replaced by
    ``links`` in their place, every other block is kept. A link equal to a stored one (same url and
    link_id) keeps that block's id, so its click history carries over. Sort orders are renumbered."""
    pool = [b for b in stored if b["type"] == "link" and b["is_active"]]
    reused: list[uuid.UUID | None] = []
    free = list(pool)
    for item in links:
        match = next(
            (b for b in free if b["url"] == item.url and str(b["link_id"] or "") == (item.link_id or "")), None
        )
        if match is not None:
            free.remove(match)
        reused.append(match["id"] if match is not None else None)
    new_links = [
        (f"{field}[{i}]", item, block_id) for i, (item, block_id) in enumerate(zip(links, reused, strict=True))
    ]
    order: list[tuple[str, BlockIn]] = []
    queue = list(new_links)
    slots = {b["id"] for b in pool}
    last_slot = max((i for i, b in enumerate(stored) if b["id"] in slots), default=-1)
    for i, b in enumerate(stored):
        if b["id"] not in slots:
            order.append((f"blocks[{i}]", BlockIn(id=str(b["id"]))))
            continue
        if queue:
            order.append(_link_block(*queue.pop(0)))
        if i == last_slot:
            order.extend(_link_block(*rest) for rest in queue)
            queue.clear()
    order.extend(_link_block(*rest) for rest in queue)
    for position, (_, block) in enumerate(order):
        block.sort_order = position
    return order


def _link_block(name: str, item: LinkItemIn, block_id: uuid.UUID | None) -> tuple[str, BlockIn]:
    block = BlockIn(
        id=str(block_id) if block_id else None,
        type="link",
        label=item.label,
        url=item.url,
        link_id=item.link_id,
        is_active=True,
    )
    return name, block
