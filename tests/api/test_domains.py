"""Branded domains through the API: claims, DNS proof against a real DNS server, settings, deletion,
plan limits, tenant isolation, and links on domains (codes unique per domain)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from api.settings import Settings
from redirector.cache import decode_domain, decode_record
from redirector.keys import domain_key, link_key
from tests.api.domain_fixtures import dns, settings
from tests.api.support import Api
from tests.dns_server import DnsServer
from tests.support import free_port

__all__ = ["dns", "settings"]  # fixtures, used by name

HOST = "go.acme.test"


def add(api: Api, hostname: str = HOST, **body: object) -> dict:
    r = api.post("/domains", json={"hostname": hostname, **body})
    assert r.status_code == 201, r.text
    return r.json()["data"]


def prove(dns: DnsServer, domain: dict) -> None:
    """Publish the domain's TXT challenge on the test DNS server, as its owner would."""
    txt = next(r for r in domain["dns_records"] if r["type"] == "TXT")
    dns.txt[txt["name"]] = [txt["value"]]


def verified(api: Api, dns: DnsServer, hostname: str = HOST, **body: object) -> dict:
    domain = add(api, hostname, **body)
    prove(dns, domain)
    r = api.post(f"/domains/{domain['id']}/verify")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    return r.json()["error"]


# --- claims ------------------------------------------------------------------------------------


def test_a_new_domain_is_unverified_and_names_the_records_to_create(api: Api, sync_redis, settings) -> None:
    domain = add(api, "GO.Acme.Test.")
    assert domain["hostname"] == HOST and domain["kind"] == "links"
    assert domain["verified"] is False and domain["verified_at"] is None and domain["links_count"] == 0
    txt, cname = domain["dns_records"]
    assert txt["type"] == "TXT" and txt["name"] == f"_linkedge-challenge.{HOST}"
    assert txt["value"].startswith("linkedge-verify-") and len(txt["value"]) > 30
    assert cname == {"type": "CNAME", "name": HOST, "value": "sho.rt"}
    # Unproved, it serves nothing: no record for the edge.
    assert sync_redis.get(domain_key(settings.key_prefix, HOST)) is None
    assert api.get(f"/domains/{domain['id']}").json()["data"] == domain


def test_unicode_hostnames_are_stored_as_punycode(api: Api) -> None:
    assert add(api, "Bücher.Example")["hostname"] == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("hostname", "says"),
    [
        ("https://go.acme.test/x", "bare hostname"),
        ("go.acme.test:8443", "port"),
        ("192.0.2.7", "IP address"),
        ("[2001:db8::1]", "IP address"),
        ("localhost", "two labels"),
        ("-bad.acme.test", "hyphen"),
        ("under_score.acme.test", "letters, digits and hyphens"),
        ("bad.xn--ü.test", "valid hostname"),
        ("a." * 127 + "test", "233"),
        ("a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 50 + ".test", "233"),
        ("go.acme.123", "top-level"),
        ("sho.rt", "own hostname"),
        ("", "empty"),
    ],
)
def test_bad_hostnames_are_a_422_naming_the_field(api: Api, hostname: str, says: str) -> None:
    body = error(api.post("/domains", json={"hostname": hostname}), 422)
    assert body["details"][0]["field"] == "hostname"
    assert says.lower() in body["message"].lower() + body["details"][0]["message"].lower()


def test_a_team_adds_a_hostname_once(api: Api) -> None:
    add(api)
    assert "already has" in error(api.post("/domains", json={"hostname": HOST.upper()}), 409)["message"]


def test_plan_limits_are_a_402(make_api: Callable[..., Api]) -> None:
    free = make_api("solo", plan="free")
    add(free, "one.solo.test")
    body = error(free.post("/domains", json={"hostname": "two.solo.test"}), 402)
    assert body["code"] == "plan_limit" and "1 custom domain" in body["message"]


def test_abilities_guard_every_domain_route(api: Api) -> None:
    domain = add(api)
    reader = api.with_abilities("domains:read")
    assert reader.get(f"/domains/{domain['id']}").status_code == 200
    assert reader.post("/domains", json={"hostname": "x.acme.test"}).status_code == 403
    assert reader.post(f"/domains/{domain['id']}/verify").status_code == 403
    assert reader.delete(f"/domains/{domain['id']}").status_code == 403
    links_only = api.with_abilities("links:read,links:write")
    assert links_only.get("/domains").status_code == 403


def test_another_teams_domain_is_a_404_on_every_route(api: Api, make_api: Callable[..., Api], dns) -> None:
    domain = verified(api, dns)
    other = make_api("globex")
    did = domain["id"]
    assert other.get(f"/domains/{did}").status_code == 404
    assert other.patch(f"/domains/{did}", json={"root_url": "https://evil.test/"}).status_code == 404
    assert other.post(f"/domains/{did}/verify").status_code == 404
    assert other.delete(f"/domains/{did}?force=true").status_code == 404
    assert other.get("/domains").json()["data"] == []
    assert api.get(f"/domains/{did}").json()["data"]["root_url"] is None


def test_not_a_domain_id_is_a_404(api: Api) -> None:
    assert error(api.get("/domains/not-an-id"), 404)["code"] == "not_found"


def test_list_is_newest_first_and_paginated(api: Api) -> None:
    ids = [add(api, f"d{i}.acme.test")["id"] for i in range(3)]
    first = api.get("/domains?per_page=2").json()
    assert [d["id"] for d in first["data"]] == ids[::-1][:2]
    rest = api.get(f"/domains?per_page=2&cursor={first['meta']['next_cursor']}").json()
    assert [d["id"] for d in rest["data"]] == ids[:1] and rest["meta"]["next_cursor"] is None


# --- proof ---------------------------------------------------------------------------------------


def test_the_right_txt_record_verifies_and_publishes_the_domain(api: Api, dns, sync_redis, settings) -> None:
    domain = add(api, kind="both", root_url="https://acme.test/")
    prove(dns, domain)
    r = api.post(f"/domains/{domain['id']}/verify")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["verified"] is True and data["verified_at"] is not None
    record = decode_domain(sync_redis.get(domain_key(settings.key_prefix, HOST)))
    assert record.id == domain["id"] and record.links and record.bio and record.root_url == "https://acme.test/"
    # Verifying again answers the domain as it is.
    assert api.post(f"/domains/{domain['id']}/verify").json()["data"]["verified_at"] == data["verified_at"]


def test_a_wrong_token_is_a_422_saying_what_dns_holds(api: Api, dns) -> None:
    domain = add(api)
    dns.txt[f"_linkedge-challenge.{HOST}"] = ["someone-elses-token"]
    body = error(api.post(f"/domains/{domain['id']}/verify"), 422)
    assert "someone-elses-token" in body["message"]
    assert domain["dns_records"][0]["value"] in body["message"]
    assert api.get(f"/domains/{domain['id']}").json()["data"]["verified"] is False


def test_no_record_is_a_422_saying_what_to_create(api: Api, dns) -> None:
    domain = add(api)
    body = error(api.post(f"/domains/{domain['id']}/verify"), 422)
    assert "does not exist" in body["message"] and f"_linkedge-challenge.{HOST}" in body["message"]
    assert dns.queries == [f"_linkedge-challenge.{HOST}."]


def test_a_failing_resolver_is_a_503_with_retry_after(api: Api, dns) -> None:
    domain = add(api)
    dns.servfail = True
    r = api.post(f"/domains/{domain['id']}/verify")
    assert error(r, 503)["code"] == "service_unavailable"
    assert r.headers["retry-after"] == "5"


def test_an_unreachable_resolver_is_a_503(env: dict[str, str], make_api, client) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = Settings.from_env({**env, "DNS_RESOLVER": f"127.0.0.1:{free_port()}"})
    with TestClient(create_app(settings)) as down:
        api = Api(down, make_api().key, settings.database_url)
        domain = add(api)
        r = api.post(f"/domains/{domain['id']}/verify")
        assert error(r, 503)["code"] == "service_unavailable" and "retry" in r.json()["error"]["message"]


def test_a_bad_dns_resolver_setting_is_refused_at_start_up(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="DNS_RESOLVER"):
        Settings.from_env({**env, "DNS_RESOLVER": "dns.example.com"})


def test_only_one_team_can_prove_a_hostname(api: Api, make_api: Callable[..., Api], dns) -> None:
    other = make_api("globex")
    mine, theirs = add(api), add(other)  # both may claim it while nobody has proved it
    assert mine["dns_records"][0]["value"] != theirs["dns_records"][0]["value"]
    prove(dns, mine)
    assert api.post(f"/domains/{mine['id']}/verify").status_code == 200
    dns.txt[f"_linkedge-challenge.{HOST}"].append(theirs["dns_records"][0]["value"])
    assert "another team" in error(other.post(f"/domains/{theirs['id']}/verify"), 409)["message"]
    # Once proved, nobody else can even claim it.
    assert "another team" in error(make_api("initech").post("/domains", json={"hostname": HOST}), 409)["message"]


# --- settings --------------------------------------------------------------------------------------


def test_patch_changes_settings_and_the_edge_record(api: Api, dns, sync_redis, settings) -> None:
    domain = verified(api, dns)
    aasa = {"applinks": {"details": [{"appIDs": ["ABCDE12345.com.acme.app"], "components": [{"/": "/*"}]}]}}
    links = [
        {
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {"namespace": "android_app", "package_name": "com.acme.app", "sha256_cert_fingerprints": []},
        }
    ]
    r = api.patch(
        f"/domains/{domain['id']}",
        json={
            "not_found_url": "https://acme.test/404",
            "expired_url": "https://acme.test/gone",
            "apple_app_site_association": aasa,
            "assetlinks": links,
        },
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["apple_app_site_association"] == aasa and data["assetlinks"] == links
    record = decode_domain(sync_redis.get(domain_key(settings.key_prefix, HOST)))
    assert record.not_found_url == "https://acme.test/404" and record.expired_url == "https://acme.test/gone"
    assert record.aasa is not None and b"ABCDE12345.com.acme.app" in record.aasa
    r = api.patch(f"/domains/{domain['id']}", json={"not_found_url": None})
    assert r.json()["data"]["not_found_url"] is None


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("apple_app_site_association", {"apps": []}, "applinks"),
        ("apple_app_site_association", {"applinks": []}, "object"),
        ("assetlinks", [{"relation": "x", "target": {"namespace": "web"}}], "relation"),
        ("assetlinks", [{"relation": ["x"]}], "target"),
        ("root_url", "javascript:alert(1)", "http"),
        ("kind", None, "null"),
        ("kind", "mail", "links"),
    ],
)
def test_bad_settings_are_a_422_naming_the_field(api: Api, field: str, value: object, says: str) -> None:
    domain = add(api)
    body = error(api.patch(f"/domains/{domain['id']}", json={field: value}), 422)
    assert body["details"][0]["field"].startswith(field)
    assert says in body["details"][0]["message"]


# --- links on domains ------------------------------------------------------------------------------


def test_two_teams_have_the_same_slug_on_their_own_domains(
    api: Api, make_api: Callable[..., Api], dns, sync_redis, settings
) -> None:
    other = make_api("globex")
    mine, theirs = verified(api, dns), verified(other, dns, "go.globex.test")
    a = api.post("/links", json={"url": "https://acme.test/sale", "custom_slug": "sale", "domain": HOST})
    b = other.post(
        "/links", json={"url": "https://globex.test/sale", "custom_slug": "sale", "domain": "go.globex.test"}
    )
    c = api.post("/links", json={"url": "https://acme.test/platform", "custom_slug": "sale"})
    assert (a.status_code, b.status_code, c.status_code) == (201, 201, 201), (a.text, b.text, c.text)
    assert a.json()["data"]["short_url"] == f"https://{HOST}/sale" and a.json()["data"]["domain"] == HOST
    assert c.json()["data"]["short_url"] == "http://sho.rt/sale" and c.json()["data"]["domain"] == "sho.rt"
    prefix = settings.key_prefix
    assert decode_record(sync_redis.get(link_key(prefix, "sale", mine["id"]))).url == "https://acme.test/sale"
    assert decode_record(sync_redis.get(link_key(prefix, "sale", theirs["id"]))).url == "https://globex.test/sale"
    assert decode_record(sync_redis.get(link_key(prefix, "sale"))).url == "https://acme.test/platform"
    taken = api.post("/links", json={"url": "https://acme.test/2", "custom_slug": "sale", "domain": HOST})
    assert error(taken, 409)["message"] == f"The slug 'sale' is already in use on {HOST}."


def test_a_link_on_someone_elses_domain_is_a_422_naming_domain(api: Api, make_api: Callable[..., Api], dns) -> None:
    verified(make_api("globex"), dns, "go.globex.test")
    body = error(api.post("/links", json={"url": "https://acme.test/", "domain": "go.globex.test"}), 422)
    assert body["details"] == [
        {
            "field": "domain",
            "message": "must be one of this team's domains ('go.globex.test' is not); "
            "add it with POST /api/v1/domains first",
        }
    ]
    bulk = api.post("/links/bulk", json={"links": [{"url": "https://acme.test/", "domain": "go.globex.test"}]})
    assert bulk.json()["data"]["errors"][0]["error"] == "validation_failed"


def test_a_bio_only_domain_takes_no_links(api: Api, dns) -> None:
    verified(api, dns, kind="bio")
    body = error(api.post("/links", json={"url": "https://acme.test/", "domain": HOST}), 422)
    assert "bio pages only" in body["message"]


def test_list_filters_by_domain(api: Api, dns) -> None:
    verified(api, dns)
    on = api.post("/links", json={"url": "https://acme.test/a", "domain": HOST}).json()["data"]
    off = api.post("/links", json={"url": "https://acme.test/b"}).json()["data"]
    assert [x["id"] for x in api.get(f"/links?domain={HOST.upper()}").json()["data"]] == [on["id"]]
    assert [x["id"] for x in api.get("/links?domain=sho.rt").json()["data"]] == [off["id"]]
    assert error(api.get("/links?domain=nope.acme.test"), 422)["details"][0]["field"] == "domain"


def test_moving_a_link_to_another_domain_frees_the_old_key(api: Api, dns, sync_redis, settings) -> None:
    domain = verified(api, dns)
    link = api.post("/links", json={"url": "https://acme.test/a", "custom_slug": "move"}).json()["data"]
    r = api.patch(f"/links/{link['id']}", json={"domain": HOST})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["short_url"] == f"https://{HOST}/move"
    assert sync_redis.get(link_key(settings.key_prefix, "move")) is None
    assert sync_redis.get(link_key(settings.key_prefix, "move", domain["id"])) is not None
    # Back to the platform's domain, where the slug is free again.
    r = api.patch(f"/links/{link['id']}", json={"domain": "sho.rt"})
    assert r.json()["data"]["short_url"] == "http://sho.rt/move"
    assert sync_redis.get(link_key(settings.key_prefix, "move", domain["id"])) is None


def test_crawlable_links_are_the_only_ones_robots_txt_allows(api: Api, dns, sync_redis, settings) -> None:
    verified(api, dns)
    api.post("/links", json={"url": "https://acme.test/a", "custom_slug": "open", "domain": HOST, "crawlable": True})
    api.post("/links", json={"url": "https://acme.test/b", "custom_slug": "shut", "domain": HOST})
    robots = decode_domain(sync_redis.get(domain_key(settings.key_prefix, HOST))).robots
    assert robots == b"User-agent: *\nAllow: /open$\nDisallow: /\n"


# --- deletion --------------------------------------------------------------------------------------


def test_deleting_a_domain_with_links_is_a_409_unless_forced(
    api: Api, dns, sync_redis: redis.Redis, settings, db
) -> None:
    domain = verified(api, dns)
    for slug in ("one", "two"):
        api.post("/links", json={"url": "https://acme.test/", "custom_slug": slug, "domain": HOST})
    body = error(api.delete(f"/domains/{domain['id']}"), 409)
    assert "still has 2 links" in body["message"] and "force=true" in body["message"]
    assert sync_redis.get(domain_key(settings.key_prefix, HOST)) is not None
    r = api.delete(f"/domains/{domain['id']}?force=true")
    assert r.status_code == 200 and r.json()["data"] == {"id": domain["id"], "deleted": True}
    assert sync_redis.get(domain_key(settings.key_prefix, HOST)) is None
    assert api.get(f"/domains/{domain['id']}").status_code == 404
    rows = db("SELECT enabled FROM links WHERE domain_id = $1", domain["id"])
    assert [r["enabled"] for r in rows] == [False, False]
    # The hostname is free again, for this team or another.
    assert add(api)["verified"] is False


def test_deleting_an_empty_domain_needs_no_force(api: Api) -> None:
    domain = add(api)
    assert api.delete(f"/domains/{domain['id']}").status_code == 200
    assert api.get("/domains").json()["data"] == []


def test_domain_stats_sum_orphan_visits_in_the_window(api: Api, make_api: Callable[..., Api], dns, db) -> None:
    domain = verified(api, dns)
    db(
        "INSERT INTO domain_orphan_hourly (domain_id, hour, kind, visits) VALUES "
        "($1, date_trunc('hour', now()), 'root', 4), ($1, date_trunc('hour', now()), 'not_found', 2), "
        "($1, date_trunc('hour', now()) - interval '3 hours', 'not_found', 5), "
        "($1, now() - interval '400 days', 'root', 100)",
        domain["id"],
    )
    r = api.get(f"/domains/{domain['id']}/stats")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["hostname"] == HOST
    assert data["orphan_visits"] == {"root": 4, "not_found": 7, "total": 11}
    assert make_api("globex").get(f"/domains/{domain['id']}/stats").status_code == 404
    assert error(api.get(f"/domains/{domain['id']}/stats?tz=Mars/Base"), 422)["details"][0]["field"] == "tz"


# --- bio pages on domains ------------------------------------------------------------------------


def test_a_bio_page_bound_to_a_domain_lives_at_its_root(api: Api, dns, sync_redis, settings, cache) -> None:
    domain = add(api, "links.acme.test", kind="bio")
    r = api.post("/bio-pages", json={"handle": "acme", "display_name": "Acme", "domain": "LINKS.acme.test"})
    assert r.status_code == 201, r.text
    page = r.json()["data"]
    # Not proved yet: the page's URL stays on the service's host.
    assert page["domain"] == "links.acme.test" and page["html_url"] == "http://bio.test/acme"
    api.patch(f"/bio-pages/{page['id']}", json={"is_published": True})
    prove(dns, domain)
    assert api.post(f"/domains/{domain['id']}/verify").status_code == 200
    shown = api.get(f"/bio-pages/{page['id']}").json()["data"]
    assert shown["html_url"] == "https://links.acme.test/"
    record = decode_domain(sync_redis.get(domain_key(settings.key_prefix, "links.acme.test")))
    assert record.bio and record.page_handle == "acme"
    assert b'rel="canonical" href="https://links.acme.test/"' in cache("acme").html
    # Unbinding takes the page off the domain's root.
    assert api.patch(f"/bio-pages/{page['id']}", json={"domain": None}).json()["data"]["html_url"] == (
        "http://bio.test/acme"
    )
    assert decode_domain(sync_redis.get(domain_key(settings.key_prefix, "links.acme.test"))).page_handle is None


def test_binding_rules(api: Api, make_api: Callable[..., Api], dns) -> None:
    add(api, HOST)  # kind links
    add(api, "links.acme.test", kind="both")
    verified(make_api("globex"), dns, "links.globex.test", kind="bio")
    body = error(api.post("/bio-pages", json={"handle": "a1", "domain": HOST}), 422)
    assert body["details"][0]["field"] == "domain" and "short links only" in body["message"]
    body = error(api.post("/bio-pages", json={"handle": "a2", "domain": "links.globex.test"}), 422)
    assert "one of this team's domains" in body["message"]
    assert api.post("/bio-pages", json={"handle": "a3", "domain": "links.acme.test"}).status_code == 201
    body = error(api.post("/bio-pages", json={"handle": "a4", "domain": "links.acme.test"}), 409)
    assert "already shown at links.acme.test" in body["message"]
    other = api.post("/bio-pages", json={"handle": "a5"}).json()["data"]
    assert error(api.patch(f"/bio-pages/{other['id']}", json={"domain": "links.acme.test"}), 409)["code"] == "conflict"


def test_patching_crawlable_rewrites_the_domains_robots_txt(api: Api, dns, sync_redis, settings) -> None:
    verified(api, dns)
    link = api.post("/links", json={"url": "https://acme.test/a", "custom_slug": "later", "domain": HOST}).json()
    robots = lambda: decode_domain(sync_redis.get(domain_key(settings.key_prefix, HOST))).robots  # noqa: E731
    assert robots() == b"User-agent: *\nDisallow: /\n"
    assert api.patch(f"/links/{link['data']['id']}", json={"crawlable": True}).status_code == 200
    assert robots() == b"User-agent: *\nAllow: /later$\nDisallow: /\n"
    assert api.patch(f"/links/{link['data']['id']}", json={"enabled": False}).status_code == 200
    assert robots() == b"User-agent: *\nDisallow: /\n"
