"""What a click's event line says since version 2: the rule and split variant that matched, the
destination sent, its UTM tags, and the visitor's region, city and network from local mmdbs."""

from __future__ import annotations

from pathlib import Path

from redirector.events import NETWORK_DATACENTER, NETWORK_OTHER, RULE_NONE, destination_id
from redirector.visitor import split_cookie_name
from tests.redirector.edge_support import (
    BROWSER,
    edge_client,
    put_link,
    read_events,
    redis_client,
    settings_for,
    write_mmdb,
)

A, B, C, DEFAULT = "https://a.example/", "https://b.example/", "https://c.example/", "https://default.example/"
RULES = [
    {"url": A, "conditions": {"query": {"r": "a"}}},
    {"split": [{"url": B, "weight": 50}, {"url": C, "weight": 50}], "conditions": {"query": {"r": "s"}}},
]


def test_each_click_names_its_rule_variant_and_destination(env, key_prefix):
    r = redis_client(env)
    routed = put_link(r, key_prefix, "routed", DEFAULT, rules=RULES)
    put_link(r, key_prefix, "plain", "https://plain.example/")
    cookie = split_cookie_name(routed.id)
    with edge_client(settings_for(env)) as client:
        assert client.get("/routed?r=a", headers=BROWSER).headers["location"] == A
        # the split cookie holds the visitor's bucket: below 50 is the first variant
        first = client.get("/routed?r=s", headers={**BROWSER, "cookie": f"{cookie}=10"})
        second = client.get("/routed?r=s", headers={**BROWSER, "cookie": f"{cookie}=90"})
        assert (first.headers["location"], second.headers["location"]) == (B, C)
        assert client.get("/routed", headers=BROWSER).headers["location"] == DEFAULT
        assert client.get("/plain", headers=BROWSER).headers["location"] == "https://plain.example/"
    got = [(e.rule, e.variant, e.destination) for e in read_events(r, key_prefix)]
    assert got == [
        ("0", "", destination_id(A)),
        ("1", "1.0", destination_id(B)),
        ("1", "1.1", destination_id(C)),
        (RULE_NONE, "", destination_id(DEFAULT)),
        ("", "", destination_id("https://plain.example/")),
    ]


def test_utm_tags_are_those_of_the_final_destination(env, key_prefix):
    r = redis_client(env)
    put_link(r, key_prefix, "tagged", "https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=spring")
    put_link(r, key_prefix, "fwd", "https://shop.example/f?utm_source=news", forward_query=True)
    put_link(r, key_prefix, "bare", "https://shop.example/")
    with edge_client(settings_for(env)) as client:
        client.get("/tagged", headers=BROWSER)
        # a forwarded query's tags win, as they do in the URL the visitor gets
        location = client.get("/fwd?utm_source=ads&utm_campaign=x%09y", headers=BROWSER).headers["location"]
        assert location == "https://shop.example/f?utm_source=ads&utm_campaign=x%09y"
        client.get("/bare?utm_source=ignored", headers=BROWSER)  # not forwarded: not the destination's
    events = read_events(r, key_prefix)
    assert [(e.utm_source, e.utm_medium, e.utm_campaign) for e in events] == [
        ("news", "email", "spring"),
        ("ads", "", "x y"),  # a tab would split the line: cleaned
        ("", "", ""),
    ]
    # the destination id is the link's URL, whatever query was forwarded into it
    assert events[1].destination == destination_id("https://shop.example/f?utm_source=news")


def test_region_city_and_network_from_local_databases(env, key_prefix, tmp_path: Path):
    city4, city6, asn = tmp_path / "city-v4.mmdb", tmp_path / "city-v6.mmdb", tmp_path / "asn.mmdb"
    # ip-location-db's flat records for IPv4, MaxMind's GeoLite2 shape for IPv6
    write_mmdb(
        city4,
        {
            "203.0.113.0/24": {"country_code": "CA", "state1": "Ontario", "state2": "", "city": "Toronto"},
            "198.51.100.0/24": {"country_code": "FR", "state1": "", "city": ""},
        },
    )
    write_mmdb(
        city6,
        {
            "2001:db8::/32": {
                "country": {"iso_code": "DE"},
                "subdivisions": [{"iso_code": "BE", "names": {"en": "Land Berlin"}}],
                "city": {"names": {"en": "Berlin", "de": "Berlin"}},
            }
        },
        ip_version=6,
    )
    write_mmdb(
        asn,
        {
            "203.0.113.0/24": {"autonomous_system_number": 16509, "autonomous_system_organization": "AMAZON-02"},
            "198.51.100.0/24": {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Cable"},
            "192.0.2.0/24": {"autonomous_system_number": 64501, "autonomous_system_organization": "Acme Hosting"},
        },
    )
    r = redis_client(env)
    put_link(r, key_prefix, "geo", "https://example.com/")
    settings = settings_for(env, geoip_city_db=(str(city4), str(city6)), geoip_asn_db=(str(asn),))
    for client_ip in ("203.0.113.7", "2001:db8::1", "198.51.100.9", "192.0.2.1", "10.0.0.1"):
        with edge_client(settings, client=(client_ip, 1)) as client:
            assert client.get("/geo", headers=BROWSER).status_code == 302
    got = [(e.region, e.city, e.asn, e.network) for e in read_events(r, key_prefix)]
    assert got == [
        ("CA|Ontario", "CA|Ontario|Toronto", "16509", NETWORK_DATACENTER),
        ("DE|Land Berlin", "DE|Land Berlin|Berlin", "", ""),
        ("", "", "64500", NETWORK_OTHER),  # a country without region or city: nothing to say
        ("", "", "64501", NETWORK_DATACENTER),  # by the organisation's name
        ("", "", "", ""),
    ]


def test_without_city_or_asn_databases_those_fields_stay_empty(env, key_prefix, tmp_path: Path):
    r = redis_client(env)
    put_link(r, key_prefix, "nogeo", "https://example.com/")
    settings = settings_for(env, geoip_city_db=(str(tmp_path / "absent.mmdb"),), geoip_asn_db=())
    with edge_client(settings, client=("203.0.113.7", 1)) as client:
        assert client.get("/nogeo", headers=BROWSER).headers["location"] == "https://example.com/"
    (event,) = read_events(r, key_prefix)
    assert (event.region, event.city, event.asn, event.network) == ("", "", "", "")
    assert event.destination == destination_id("https://example.com/")
