"""kit.queue: arq job ids carry the namespace and the arq slot's hash tag; the pool tags what it enqueues.

The pool runs against the local Redis under this run's key prefix (a namespace of its own per test),
and removes what it wrote.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, result_key_prefix
from redis.crc import key_slot
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kit.queue import ARQ_TAG, ArqPool, arq_job_id, arq_queue_name, create_arq_pool
from tests.redirector.edge_support import free_port


def test_a_given_job_id_is_namespaced_and_tagged_once() -> None:
    tagged = arq_job_id("delete_page:x", "t1:")
    assert tagged == "t1:delete_page:x" + ARQ_TAG
    assert arq_job_id(tagged, "t1:") == tagged
    assert arq_job_id(tagged, "other:") == tagged  # already tagged: left alone
    assert arq_job_id("job") == "job" + ARQ_TAG


def test_a_missing_job_id_is_a_fresh_random_one() -> None:
    first, second = arq_job_id(namespace="t1:"), arq_job_id(None, "t1:")
    assert first != second
    for job_id in (first, second):
        assert job_id.startswith("t1:") and job_id.endswith(ARQ_TAG)
        uuid.UUID(hex=job_id.removeprefix("t1:").removesuffix(ARQ_TAG))


def test_the_queue_and_every_key_of_a_job_share_the_arq_slot() -> None:
    job_id = arq_job_id("rollup_drain", "t1:")
    queue = arq_queue_name("t1:")
    assert queue.startswith("t1:") and queue.endswith(ARQ_TAG)
    keys = [queue, abort_jobs_ss, *(prefix + job_id for prefix in (job_key_prefix, result_key_prefix))]
    keys.append(in_progress_key_prefix + job_id)
    assert len({key_slot(k.encode()) for k in keys}) == 1


@pytest.fixture
async def pool(redis_url: str, key_prefix: str) -> AsyncIterator[ArqPool]:
    namespace = f"{key_prefix}kitq{uuid.uuid4().hex[:8]}:"
    arq = await create_arq_pool(redis_url, queue_name=arq_queue_name(namespace), job_namespace=namespace)
    try:
        yield arq
    finally:
        stale = [k async for k in arq.scan_iter(match=f"*{namespace}*")]
        if stale:
            await arq.delete(*stale)
        await arq.aclose()


async def test_the_pool_enqueues_under_tagged_namespaced_ids(pool: ArqPool) -> None:
    assert pool.cluster_url is None  # one Redis: nothing to follow
    job = await pool.enqueue_job("rollup_drain", _job_id="drain")
    assert job is not None and job.job_id == f"{pool.job_namespace}drain{ARQ_TAG}"
    assert await pool.exists(job_key_prefix + job.job_id) == 1
    assert await pool.zrange(pool.default_queue_name, 0, -1) == [job.job_id.encode()]
    # The same id again is the same job: arq refuses the duplicate.
    assert await pool.enqueue_job("rollup_drain", _job_id="drain") is None
    assert await pool.enqueue_job("rollup_drain", _job_id=job.job_id) is None
    other = await pool.enqueue_job("rollup_drain")
    assert other is not None and other.job_id.startswith(pool.job_namespace) and other.job_id.endswith(ARQ_TAG)
    assert await pool.zcard(pool.default_queue_name) == 2


async def test_create_arq_pool_raises_when_nothing_answers() -> None:
    with pytest.raises((RedisError, OSError)):
        await create_arq_pool(f"redis://127.0.0.1:{free_port()}/0", queue_name=arq_queue_name("t1:"), retries=0)


async def test_socket_timeout_bounds_the_wait_for_a_server_that_never_answers() -> None:
    # A listener that accepts (the kernel does, from its backlog) and never replies: a hung Redis.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await create_arq_pool(url, queue_name=arq_queue_name("t1:"), retries=0, socket_timeout=0.3)
        assert time.monotonic() - started < 3
