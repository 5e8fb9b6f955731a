"""kit.reach.answers: a TCP probe of a service URL, on real loopback sockets and the local Redis."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from kit.reach import answers
from tests.redirector.edge_support import free_port


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port something listens on (and accepts nothing more of)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_answers_is_true_for_a_listening_port(listening: int) -> None:
    assert answers(f"postgresql://postgres@127.0.0.1:{listening}/x")
    assert answers(f"redis://127.0.0.1:{listening}/0")


def test_answers_is_false_for_a_dead_port():
    assert not answers(f"postgresql://postgres@127.0.0.1:{free_port()}/x")


def test_answers_is_false_once_the_listener_closes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert answers(f"redis://127.0.0.1:{port}/0")
    assert not answers(f"redis://127.0.0.1:{port}/0")


def test_a_url_without_a_host_is_taken_as_given() -> None:
    # A Unix socket: the client says whether it is there.
    assert answers("unix:///nonexistent/redis.sock?db=0")
    assert answers("postgresql:///linkedge?host=/nonexistent")


def test_the_local_redis_answers(redis_url: str) -> None:
    assert answers(redis_url)


def test_a_cluster_url_answers_when_one_seed_does(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    if not parts.hostname:
        pytest.skip(f"the test Redis is not on TCP: {redis_url}")
    live = f"{parts.hostname}:{parts.port or 6379}"
    dead = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    assert answers(f"redis+cluster://{dead[0]},{live},{dead[1]}")
    assert answers(f"rediss+cluster://user:pw@{live}")
    assert not answers(f"redis+cluster://{dead[0]},{dead[1]}")
