"""Countries from the local GeoIP database, through HTTP."""

from __future__ import annotations

import ipaddress

from tests.redirector.edge_support import (
    BROWSER,
    edge_client,
    put_link,
    read_events,
    redis_client,
    settings_for,
    write_mmdb,
)


def test_country_from_geoip_database(env, key_prefix, tmp_path):
    db = tmp_path / "country.mmdb"
    write_mmdb(db, {"203.0.113.0/24": {"country_code": "CA"}})
    r = redis_client(env)
    put_link(
        r,
        key_prefix,
        "geo",
        "https://example.com/",
        rules=[{"url": "https://ca.example/", "conditions": {"country": ["CA"]}}],
    )
    # 203.0.113.20 is a trusted proxy that sends the country header; 192.0.2.1 is not.
    proxy = (ipaddress.ip_network("203.0.113.20/32"),)
    settings = settings_for(env, geoip_db=str(db), country_header="cf-ipcountry", trusted_proxies=proxy)
    with edge_client(settings, client=("203.0.113.20", 1)) as client:
        assert client.get("/geo", headers=BROWSER).headers["location"] == "https://ca.example/"
        # the trusted header, when present, wins over the database
        assert (
            client.get("/geo", headers={**BROWSER, "cf-ipcountry": "FR"}).headers["location"] == "https://example.com/"
        )
    with edge_client(settings, client=("192.0.2.1", 1)) as client:
        assert client.get("/geo", headers=BROWSER).headers["location"] == "https://example.com/"
        # from anyone else the header is not believed: a client cannot choose its country
        assert (
            client.get("/geo", headers={**BROWSER, "cf-ipcountry": "CA"}).headers["location"] == "https://example.com/"
        )
    assert [e.country for e in read_events(r, key_prefix)] == ["CA", "FR", "", ""]


def test_missing_database_means_unknown_country(env, key_prefix, tmp_path):
    r = redis_client(env)
    put_link(
        r,
        key_prefix,
        "geo",
        "https://example.com/",
        rules=[{"url": "https://ca.example/", "conditions": {"country": ["CA"]}}],
    )
    settings = settings_for(env, geoip_db=str(tmp_path / "absent.mmdb"))
    with edge_client(settings, client=("203.0.113.20", 1)) as client:
        assert client.get("/geo", headers=BROWSER).headers["location"] == "https://example.com/"
    assert [e.country for e in read_events(r, key_prefix)] == [""]
