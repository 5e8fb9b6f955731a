"""Bio page cache records: the rendered page plus its click and form routing (``PageRecord``).

Called by :mod:`api.serving.sync` after every commit that changes what a page serves, and by the
full rebuild. Only published pages that are not deleted have a record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from api.serving import queries
from api.serving.config import ServingConfig
from api.serving.render import render_page
from kit.postgres import Conn, Row
from redirector.cache import PageRecord, encode_page

BATCH = 200


def build_record(settings: ServingConfig, page: Row, blocks: Sequence[Row]) -> PageRecord:
    rendered = render_page(settings, page, blocks)
    return PageRecord(
        id=str(page["id"]),
        team_id=str(page["team_id"]),
        handle=page["handle"],
        etag=rendered.etag,
        html=rendered.html,
        blocks=rendered.blocks,
        block_links=rendered.block_links,
        forms=tuple(rendered.forms),
    )


async def page_record_by_handle(conn: Conn, settings: ServingConfig, handle: str) -> bytes | None:
    """The encoded PageRecord for a published page with this handle, else None."""
    page = await queries.published_page(conn, handle)
    if page is None:
        return None
    blocks = (await queries.blocks_of(conn, [page["id"]]))[page["id"]]
    return encode_page(build_record(settings, page, blocks))


async def iter_page_records(conn: Conn, settings: ServingConfig) -> AsyncIterator[tuple[str, bytes]]:
    """(lower-cased handle, encoded PageRecord) for every published page, in batches."""
    after = None
    while True:
        pages = await queries.published_pages_after(conn, after, BATCH)
        if not pages:
            return
        blocks = await queries.blocks_of(conn, [p["id"] for p in pages])
        for page in pages:
            yield page["handle"].lower(), encode_page(build_record(settings, page, blocks[page["id"]]))
        after = pages[-1]["id"]
