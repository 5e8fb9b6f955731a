"""Team domains at the edge: what a visitor gets on go.acme.test after the API has set it up.

The API and the real edge app share this run's PostgreSQL and Redis; domains are proved against a
real DNS server on a loopback port. The edge runs without its in-process cache (every request reads
Redis), so a write shows at once; the multi-process tests cover the invalidation path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from redirector.app import create_app as create_edge
from redirector.hosts import canonical_host
from redirector.settings import Settings as EdgeSettings
from tests.api.domain_fixtures import dns, settings
from tests.api.support import Api, roll_up
from tests.dns_server import DnsServer

__all__ = ["dns", "settings"]  # fixtures, used by name

HOST = "go.acme.test"
BROWSER = {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"}


@pytest.fixture
def make_edge(env: dict[str, str]) -> Iterator[Callable[..., TestClient]]:
    """``make_edge(peer=..., **env)``: the edge app with these settings on top (no in-process cache),
    its requests coming from ``peer``."""
    clients: list[TestClient] = []

    def make(peer: str = "testclient", **extra: str) -> TestClient:
        settings = EdgeSettings.from_env({**env, "LOCAL_CACHE": "0", **extra})
        app = create_edge(settings)
        client = TestClient(app, base_url="http://sho.rt", follow_redirects=False, client=(peer, 50000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def edge(make_edge: Callable[..., TestClient]) -> TestClient:
    return make_edge()


def domain(api: Api, dns: DnsServer, hostname: str = HOST, **body: object) -> dict:
    r = api.post("/domains", json={"hostname": hostname, **body})
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    txt = data["dns_records"][0]
    dns.txt[txt["name"]] = [txt["value"]]
    r = api.post(f"/domains/{data['id']}/verify")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def link(api: Api, url: str, **body: object) -> dict:
    r = api.post("/links", json={"url": url, **body})
    assert r.status_code == 201, r.text
    return r.json()["data"]


def get(edge: TestClient, path: str, host: str = HOST, **headers: str):
    return edge.get(path, headers={"host": host, **BROWSER, **headers})


def test_two_teams_have_sale_on_their_own_domains(api: Api, make_api: Callable[..., Api], dns, edge) -> None:
    other = make_api("globex")
    domain(api, dns)
    domain(other, dns, "go.globex.test")
    link(api, "https://acme.test/sale", custom_slug="sale", domain=HOST)
    link(other, "https://globex.test/sale", custom_slug="sale", domain="go.globex.test")
    link(api, "https://platform.test/sale", custom_slug="sale")
    assert get(edge, "/sale").headers["location"] == "https://acme.test/sale"
    assert get(edge, "/sale", host="go.globex.test").headers["location"] == "https://globex.test/sale"
    assert get(edge, "/sale", host="sho.rt").headers["location"] == "https://platform.test/sale"
    # A code of the service's domain does not answer on a team's.
    link(api, "https://platform.test/only", custom_slug="only-here")
    assert get(edge, "/only-here").status_code == 404


@pytest.mark.parametrize("host", ["GO.ACME.TEST", "go.acme.test:8443", "go.acme.test.", "Go.Acme.Test.:80"])
def test_host_variants_find_the_same_link(api: Api, dns, edge, host: str) -> None:
    domain(api, dns)
    link(api, "https://acme.test/v", custom_slug="var", domain=HOST)
    r = get(edge, "/var", host=host)
    assert r.status_code == 302 and r.headers["location"] == "https://acme.test/v"


def test_an_idn_domain_answers_on_its_punycode_host(api: Api, dns, edge) -> None:
    made = domain(api, dns, "Bücher.Example")
    assert made["hostname"] == "xn--bcher-kva.example"
    link(api, "https://books.test/", custom_slug="book", domain="bücher.example")
    assert get(edge, "/book", host="xn--bcher-kva.example").headers["location"] == "https://books.test/"
    assert get(edge, "/book", host="XN--BCHER-KVA.EXAMPLE").headers["location"] == "https://books.test/"
    # A Unicode Host header (as some clients send) is the same name.
    assert canonical_host("Bücher.Example:443".encode()) == "xn--bcher-kva.example"


def test_unknown_and_unverified_hosts_serve_nothing(api: Api, dns, edge, make_edge) -> None:
    r = api.post("/domains", json={"hostname": "pending.acme.test"})
    assert r.status_code == 201
    link(api, "https://acme.test/p", custom_slug="pee", domain="pending.acme.test")
    link(api, "https://platform.test/p", custom_slug="pee")
    assert get(edge, "/pee", host="pending.acme.test").status_code == 404  # not proved: not served
    assert get(edge, "/pee", host="nobody.example").status_code == 404
    assert get(edge, "/", host="nobody.example").status_code == 404
    # IP literals and localhost are the service's own: the edge answers them as before domains.
    assert get(edge, "/pee", host="127.0.0.1:8080").headers["location"] == "https://platform.test/p"
    assert get(edge, "/pee", host="localhost").headers["location"] == "https://platform.test/p"
    # The configurable default for unknown hosts.
    assert get(make_edge(UNKNOWN_HOSTS="platform"), "/pee", host="nobody.example").headers["location"] == (
        "https://platform.test/p"
    )
    r = get(make_edge(UNKNOWN_HOSTS="https://linkedge.test/claim"), "/pee", host="nobody.example")
    assert r.status_code == 302 and r.headers["location"] == "https://linkedge.test/claim"


def test_a_bad_unknown_hosts_setting_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="UNKNOWN_HOSTS"):
        EdgeSettings.from_env({**env, "UNKNOWN_HOSTS": "sometimes"})


def test_forwarded_host_is_believed_only_from_trusted_proxies(api: Api, dns, make_edge) -> None:
    domain(api, dns)
    link(api, "https://acme.test/f", custom_slug="fwd", domain=HOST)
    link(api, "https://platform.test/f", custom_slug="fwd")
    behind_proxy = make_edge(peer="10.0.0.2", FORWARDED_HOST="1", TRUSTED_PROXIES="10.0.0.0/8")
    r = get(behind_proxy, "/fwd", host="edge.internal", **{"x-forwarded-host": HOST.upper()})
    assert r.headers["location"] == "https://acme.test/f"
    # From a peer that is no trusted proxy, the header is the visitor's word: ignored.
    direct = make_edge(peer="203.0.113.9", FORWARDED_HOST="1", TRUSTED_PROXIES="10.0.0.0/8")
    assert get(direct, "/fwd", host="sho.rt", **{"x-forwarded-host": HOST}).headers["location"] == (
        "https://platform.test/f"
    )
    # Without FORWARDED_HOST it is ignored even from a trusted proxy.
    plain = make_edge(peer="10.0.0.2", TRUSTED_PROXIES="10.0.0.0/8")
    assert get(plain, "/fwd", host="sho.rt", **{"x-forwarded-host": HOST}).headers["location"] == (
        "https://platform.test/f"
    )


def test_root_not_found_and_expired_fallbacks(api: Api, dns, edge) -> None:
    made = domain(
        api,
        dns,
        root_url="https://acme.test/",
        not_found_url="https://acme.test/404",
        expired_url="https://acme.test/gone",
    )
    link(api, "https://acme.test/old", custom_slug="old", domain=HOST, expires_at="2001-01-01T00:00:00Z")
    link(
        api,
        "https://acme.test/own",
        custom_slug="own",
        domain=HOST,
        expires_at="2001-01-01T00:00:00Z",
        expired_url="https://acme.test/own-gone",
    )
    link(api, "https://acme.test/once", custom_slug="once", domain=HOST, max_clicks=1)
    assert get(edge, "/").headers["location"] == "https://acme.test/"
    assert get(edge, "/nope").headers["location"] == "https://acme.test/404"
    assert get(edge, "/old").headers["location"] == "https://acme.test/gone"
    assert get(edge, "/own").headers["location"] == "https://acme.test/own-gone"  # the link's own wins
    assert get(edge, "/once").headers["location"] == "https://acme.test/once"
    assert get(edge, "/once").headers["location"] == "https://acme.test/gone"  # used up
    # Without fallbacks: 404 and 410, as on the service's domain.
    api.patch(f"/domains/{made['id']}", json={"root_url": None, "not_found_url": None, "expired_url": None})
    assert get(edge, "/").status_code == 404
    assert get(edge, "/nope").status_code == 404
    assert get(edge, "/old").status_code == 410


def test_a_links_own_expired_url_works_on_the_service_domain_too(api: Api, edge) -> None:
    link(api, "https://x.test/", custom_slug="over", expires_at="2001-01-01T00:00:00Z", expired_url="https://x.test/e")
    assert get(edge, "/over", host="sho.rt").headers["location"] == "https://x.test/e"


def test_orphan_visits_are_counted_exactly(api: Api, dns, edge, env) -> None:
    made = domain(api, dns, not_found_url="https://acme.test/404")
    for _ in range(3):
        get(edge, "/")
    for path in ("/a", "/book"):
        get(edge, path)
    edge.head("/ccc", headers={"host": HOST, **BROWSER})  # a HEAD is no visit
    get(edge, "/ddd", **{"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"})  # bots aside
    get(edge, "/xxx", host="sho.rt")  # not a team domain: no orphan of this one
    roll_up(env)
    stats = api.get(f"/domains/{made['id']}/stats").json()["data"]
    assert stats["orphan_visits"] == {"root": 3, "not_found": 2, "total": 5}


def test_x_robots_tag_and_robots_txt(api: Api, dns, edge) -> None:
    domain(api, dns)
    link(api, "https://acme.test/open", custom_slug="open", domain=HOST, crawlable=True)
    link(api, "https://acme.test/shut", custom_slug="shut", domain=HOST)
    assert "x-robots-tag" not in get(edge, "/open").headers
    assert get(edge, "/shut").headers["x-robots-tag"] == "noindex"
    robots = get(edge, "/robots.txt")
    assert robots.status_code == 200 and robots.headers["content-type"].startswith("text/plain")
    assert robots.text == "User-agent: *\nAllow: /open$\nDisallow: /\n"
    assert get(edge, "/robots.txt", host="sho.rt").text == "User-agent: *\nDisallow:\n"


def test_deep_link_files(api: Api, dns, edge) -> None:
    aasa = {"applinks": {"details": [{"appIDs": ["ABCDE12345.com.acme.app"], "components": [{"/": "/*"}]}]}}
    links = [{"relation": ["delegate_permission/common.handle_all_urls"], "target": {"namespace": "android_app"}}]
    made = domain(api, dns)
    assert get(edge, "/.well-known/apple-app-site-association").status_code == 404
    api.patch(f"/domains/{made['id']}", json={"apple_app_site_association": aasa, "assetlinks": links})
    r = get(edge, "/.well-known/apple-app-site-association")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json" and r.json() == aasa
    r = get(edge, "/.well-known/assetlinks.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json" and r.json() == links
    assert get(edge, "/.well-known/assetlinks.json", host="sho.rt").status_code == 404


def test_a_deleted_domain_stops_serving_at_once(api: Api, dns, edge) -> None:
    made = domain(api, dns)
    link(api, "https://acme.test/x", custom_slug="xxx", domain=HOST)
    assert get(edge, "/xxx").status_code == 302
    assert api.delete(f"/domains/{made['id']}?force=true").status_code == 200
    assert get(edge, "/xxx").status_code == 404


def test_moving_a_link_off_a_domain_stops_its_old_url(api: Api, dns, edge) -> None:
    domain(api, dns)
    made = link(api, "https://acme.test/m", custom_slug="mov", domain=HOST)
    api.patch(f"/links/{made['id']}", json={"domain": "sho.rt"})
    assert get(edge, "/mov").status_code == 404
    assert get(edge, "/mov", host="sho.rt").headers["location"] == "https://acme.test/m"


def test_another_teams_page_is_not_shown_on_a_team_domain(api: Api, make_api, dns, edge) -> None:
    other = make_api("globex")
    r = other.post("/bio-pages", json={"handle": "globex", "display_name": "Globex", "is_published": True})
    assert r.status_code == 201, r.text
    other.patch(f"/bio-pages/{r.json()['data']['id']}", json={"is_published": True})
    assert edge.get("/@globex").status_code == 200  # on the service's host
    domain(api, dns, kind="both")
    assert get(edge, "/@globex").status_code == 404


def test_the_tls_ask_endpoint_allows_only_the_services_hosts_and_verified_domains(
    api: Api, dns, make_edge, env
) -> None:
    import httpx

    from tests.support import free_port

    port = free_port()
    make_edge(EDGE_METRICS_PORT=str(port), LOCAL_CACHE="1")
    r = api.post("/domains", json={"hostname": "pending.acme.test"})
    assert r.status_code == 201
    domain(api, dns)
    ask = f"http://127.0.0.1:{port}/tls/ask"

    def status(host: str) -> int:
        return httpx.get(ask, params={"domain": host}, timeout=5).status_code

    assert status(HOST) == 200
    assert status(HOST.upper() + ".") == 200
    assert status("sho.rt") == 200 and status("bio.test") == 200  # the service's own (PUBLIC/BIO_BASE_URL)
    assert status("pending.acme.test") == 404  # claimed, not proved
    assert status("nobody.example") == 404
    assert status("127.0.0.1") == 404 and status("localhost") == 404
    assert httpx.get(ask, timeout=5).status_code == 400
    assert httpx.post(ask, params={"domain": HOST}, timeout=5).status_code == 405
    # /metrics is still served beside it.
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200


def test_a_cached_domain_expires_like_any_cached_record(api: Api, dns, make_edge, sync_redis, settings) -> None:
    """The local cache's TTL is the safety net for a missed invalidation: domain records have it too."""
    from redirector.keys import domain_key, link_key

    made = domain(api, dns)
    link(api, "https://acme.test/ttl", custom_slug="ttl", domain=HOST)
    edge = make_edge(LOCAL_CACHE="1", LOCAL_CACHE_TTL="1")
    assert get(edge, "/ttl").headers["location"] == "https://acme.test/ttl"
    # Gone from Redis without a word on the invalidation channel (as if the announcement were lost).
    sync_redis.delete(domain_key(settings.key_prefix, HOST), link_key(settings.key_prefix, "ttl", made["id"]))
    assert get(edge, "/ttl").status_code == 302  # still cached
    time.sleep(1.3)
    assert get(edge, "/ttl").status_code == 404
