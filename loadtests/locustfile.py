"""Mixed traffic for locust: visitors on the edge, API clients on the management API.

    LINKEDGE_API_KEY=lk_... locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s

Environment (loopback only; do not pass ``--host``, each user class has its own):

- ``LINKEDGE_EDGE_URL``  edge base URL (default http://127.0.0.1:8080)
- ``LINKEDGE_API_URL``   API base URL (default http://127.0.0.1:8000)
- ``LINKEDGE_API_KEY``   API key with links:read and links:write; without it only visitors
                         run, against ``LINKEDGE_CODES``
- ``LINKEDGE_CODES``     comma-separated short codes visitors follow, besides the links created
- ``LINKEDGE_BIO_HANDLES`` comma-separated published bio page handles visitors open (/@handle)
- ``LINKEDGE_SEED_LINKS`` links created through the API at start for visitors (default 50)

Every link this run creates carries the label ``locust`` and is deleted when the run stops.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
from typing import Any

import requests
from locust import FastHttpUser, HttpUser, between, events, task

EDGE_URL = os.environ.get("LINKEDGE_EDGE_URL", "http://127.0.0.1:8080").rstrip("/")
API_URL = os.environ.get("LINKEDGE_API_URL", "http://127.0.0.1:8000").rstrip("/")
API_KEY = os.environ.get("LINKEDGE_API_KEY", "")
SEED_LINKS = int(os.environ.get("LINKEDGE_SEED_LINKS", "50"))
LABEL = "locust"
REDIRECTS = (301, 302, 307, 308)

AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
COUNTRY_RULE = [{"url": "https://example.de/locust", "conditions": {"country": ["DE", "AT"]}}]
DEVICE_RULE = [{"url": "https://m.example.com/locust", "conditions": {"device": ["ios", "android"]}}]


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class Pool:
    """Links shared between users: codes visitors follow, ids API clients edit (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: list[str] = _split(os.environ.get("LINKEDGE_CODES", ""))
        self.ids: list[str] = []
        self.handles: list[str] = _split(os.environ.get("LINKEDGE_BIO_HANDLES", ""))

    def add(self, link: dict[str, Any]) -> None:
        with self.lock:
            self.codes.append(link["short_code"])
            self.ids.append(link["id"])

    def code(self) -> str | None:
        with self.lock:
            return random.choice(self.codes) if self.codes else None

    def link_id(self) -> str | None:
        with self.lock:
            return random.choice(self.ids) if self.ids else None


POOL = Pool()


def link_body() -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": f"https://example.com/locust/{secrets.token_hex(4)}?utm_source=locust",
        "labels": [LABEL, random.choice(["spring", "summer", "autumn"])],
    }
    roll = random.random()
    if roll < 0.15:
        body["routing_rules"] = COUNTRY_RULE
    elif roll < 0.30:
        body["routing_rules"] = DEVICE_RULE
    return body


def error_code(body: str) -> str:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "no error body"


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


@events.test_start.add_listener
def seed(environment: Any, **kwargs: Any) -> None:
    """Create the visitors' first links through the API, so visitors have something to follow."""
    if not API_KEY:
        if not POOL.codes:
            print("locustfile: set LINKEDGE_API_KEY (or LINKEDGE_CODES) so visitors have links to follow")
        return
    with requests.Session() as s:
        for _ in range(SEED_LINKS):
            r = s.post(f"{API_URL}/api/v1/links", json=link_body(), headers=auth(), timeout=10)
            if r.status_code != 201:
                print(f"locustfile: seeding stopped, API answered {r.status_code}: {r.text[:200]}")
                break
            POOL.add(r.json()["data"])


@events.test_stop.add_listener
def cleanup(environment: Any, **kwargs: Any) -> None:
    """Delete every link this run created (they all carry the ``locust`` label)."""
    if not API_KEY:
        return
    with POOL.lock:
        ids, POOL.ids = list(POOL.ids), []
    with requests.Session() as s:
        for link_id in ids:
            s.delete(f"{API_URL}/api/v1/links/{link_id}", headers=auth(), timeout=10)
    print(f"locustfile: deleted {len(ids)} links created by this run")


class Visitor(FastHttpUser):
    """Someone following short links and opening bio pages on the edge."""

    host = EDGE_URL
    wait_time = between(0.2, 1.0)

    @task(10)
    def follow_link(self) -> None:
        code = POOL.code()
        if code is None:
            return
        headers = {"User-Agent": random.choice(AGENTS), "Accept-Language": "en-US,en;q=0.9"}
        with self.client.get(
            f"/{code}", headers=headers, allow_redirects=False, name="/{code}", catch_response=True
        ) as r:
            if r.status_code in REDIRECTS and r.headers.get("location"):
                r.success()
            else:
                r.failure(f"expected a redirect, got {r.status_code}")

    @task(2)
    def follow_link_from_germany_via_qr(self) -> None:
        code = POOL.code()
        if code is None:
            return
        headers = {"User-Agent": AGENTS[0], "Accept-Language": "de-DE,de;q=0.9"}
        with self.client.get(
            f"/{code}?src=qr", headers=headers, allow_redirects=False, name="/{code}?src=qr", catch_response=True
        ) as r:
            if r.status_code in REDIRECTS:
                r.success()
            else:
                r.failure(f"expected a redirect, got {r.status_code}")

    @task(3)
    def open_bio_page(self) -> None:
        if not POOL.handles:
            return
        handle = random.choice(POOL.handles)
        with self.client.get(f"/@{handle}", name="/@{handle}", catch_response=True) as r:
            if r.status_code == 200:
                r.success()
            else:
                r.failure(f"bio page answered {r.status_code}")

    @task(1)
    def unknown_code(self) -> None:
        with self.client.get(
            f"/nx-{secrets.token_hex(5)}", allow_redirects=False, name="/{unknown}", catch_response=True
        ) as r:
            if r.status_code == 404:
                r.success()
            else:
                r.failure(f"unknown code answered {r.status_code}, not 404")


class ApiClient(HttpUser):
    """An integration creating, listing and editing links through the API."""

    host = API_URL
    wait_time = between(1.0, 3.0)
    # Without a key this class would only produce 401s: run visitors alone then.
    weight = 1 if API_KEY else 0

    def check(self, r: Any, expected: int) -> None:
        if r.status_code == expected:
            r.success()
        elif r.status_code == 429:
            r.failure("rate limited (429): the key's plan caps requests per minute")
        else:
            # The error code, not the body: bodies carry request ids and would split the failure table.
            r.failure(f"expected {expected}, got {r.status_code} ({error_code(r.text)})")

    @task(3)
    def create_link(self) -> None:
        with self.client.post(
            "/api/v1/links", json=link_body(), headers=auth(), name="/api/v1/links", catch_response=True
        ) as r:
            self.check(r, 201)
            if r.status_code == 201:
                POOL.add(r.json()["data"])

    @task(5)
    def list_links(self) -> None:
        with self.client.get(
            f"/api/v1/links?label={LABEL}&per_page=25", headers=auth(), name="/api/v1/links", catch_response=True
        ) as r:
            self.check(r, 200)
            cursor = r.json().get("meta", {}).get("next_cursor") if r.status_code == 200 else None
        if cursor:
            with self.client.get(
                "/api/v1/links",
                params={"label": LABEL, "per_page": 25, "cursor": cursor},
                headers=auth(),
                name="/api/v1/links?cursor",
                catch_response=True,
            ) as r:
                self.check(r, 200)

    @task(2)
    def get_link(self) -> None:
        link_id = POOL.link_id()
        if link_id is None:
            return
        with self.client.get(
            f"/api/v1/links/{link_id}", headers=auth(), name="/api/v1/links/{id}", catch_response=True
        ) as r:
            self.check(r, 200)

    @task(2)
    def patch_link(self) -> None:
        link_id = POOL.link_id()
        if link_id is None:
            return
        change = {"url": f"https://example.com/locust/{secrets.token_hex(4)}", "labels": [LABEL, "patched"]}
        with self.client.patch(
            f"/api/v1/links/{link_id}", json=change, headers=auth(), name="/api/v1/links/{id}", catch_response=True
        ) as r:
            self.check(r, 200)
