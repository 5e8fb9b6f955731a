"""The event buffer resends a failed batch unchanged, so a lost XADD reply never doubles events."""

from __future__ import annotations

from typing import Any

from redis import Redis

from redirector.emitter import Emitter
from redirector.events import BATCH_ID_FIELD, EVENT_FIELD
from redirector.keys import event_stream_key
from redirector.metrics import Metrics
from redirector.resp.client import RespClient, RespTimeoutError
from redirector.settings import Settings


class LosesFirstReply:
    """Applies every command for real, but reports the first XADD as timed out (its reply was lost)."""

    def __init__(self, inner: RespClient) -> None:
        self.inner = inner
        self.lost = False

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(key)

    async def execute(self, *args: Any) -> Any:
        reply = await self.inner.execute(*args)
        if args[0] == "XADD" and not self.lost:
            self.lost = True
            raise RespTimeoutError("reply lost")
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_batch_whose_reply_was_lost_is_resent_with_the_same_id_and_lines(env: dict[str, str]) -> None:
    settings = Settings.from_env({**env, "EVENT_SHARDS": "2", "EVENT_BATCH": "3"})
    client = RespClient(settings.redis_url)
    await client.start()
    store = LosesFirstReply(client)
    emitter = Emitter(store, settings, Metrics())
    for line in ("a", "b", "c", "d"):
        emitter.emit(line)

    assert not await emitter.flush_once()  # landed in Redis, but the edge could not know
    emitter.emit("e")
    assert await emitter.flush_once()  # the same batch again, not a new one with "d" in it
    assert await emitter.flush_once()
    await store.aclose()

    sync = Redis.from_url(settings.redis_url)
    entries = [fields for shard in range(2) for _, fields in sync.xrange(event_stream_key(settings.key_prefix, shard))]
    sync.close()
    payloads = sorted((f[EVENT_FIELD], f[BATCH_ID_FIELD]) for f in entries)
    first = [p for p in payloads if p[0] == b"a\nb\nc"]
    assert len(first) == 2 and first[0][1] == first[1][1]  # a duplicate the workers drop by its id
    assert [p[0] for p in payloads if p[0] != b"a\nb\nc"] == [b"d\ne"]
    assert emitter.pending == 0
