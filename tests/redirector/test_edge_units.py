"""Pure pieces of the edge: UA classification, event lines, caches, hashes, GeoIP, helpers."""

from __future__ import annotations

import ipaddress
import time

import pytest

from redirector import events
from redirector.edge import Edge, bio_hosts
from redirector.events import CLICK, FORM, Event, decode_event, encode_event
from redirector.forms import valid_email
from redirector.geo import GeoIP, clean_country, create_client_ip
from redirector.hit import Hit
from redirector.links import location, merge_query
from redirector.local_cache import MISSING, LocalCache
from redirector.pages import clean_fields, etag_matches
from redirector.passwords import check_password, hash_password
from redirector.resp.client import RespClient
from redirector.settings import Settings
from redirector.ua import parse_agent
from redirector.visitor import VisitorHasher, bucket_of, read_bucket, read_cookie
from tests.redirector import edge_support as ua
from tests.redirector.edge_support import write_mmdb


@pytest.mark.parametrize(
    ("agent", "device", "os", "browser", "bot"),
    [
        (ua.IPHONE, "mobile", "ios", "safari", False),
        (ua.IPAD, "tablet", "ios", "safari", False),
        (ua.ANDROID, "mobile", "android", "chrome", False),
        (ua.ANDROID_TABLET, "tablet", "android", "chrome", False),
        (ua.WINDOWS, "desktop", "windows", "edge", False),
        (ua.MAC, "desktop", "macos", "safari", False),
        (ua.LINUX_FIREFOX, "desktop", "linux", "firefox", False),
        (ua.CHROMEOS, "desktop", "chromeos", "chrome", False),
        (
            "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 Chrome/99.0 Mobile Safari/537.36",
            "mobile",
            "android",
            "chrome",
            False,
        ),
        (ua.GOOGLEBOT, "", "", "other", True),
        (ua.SLACKBOT, "", "", "other", True),
        (ua.CURL, "", "", "other", True),
        ("python-requests/2.32.0", "", "", "other", True),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0.0.0 Safari/537.36",
            "desktop",
            "linux",
            "chrome",
            True,
        ),
        ("", "", "", "", True),
    ],
)
def test_user_agent_classification(agent, device, os, browser, bot):
    parsed = parse_agent(agent)
    assert (parsed.device, parsed.os, parsed.browser, parsed.bot) == (device, os, browser, bot)
    assert parsed.tsv == f"{device}\t{os}\t{browser}"
    assert parse_agent(agent + " " * 1000) is parse_agent(agent + " " * 2000)  # cut to 512, then cached


def make_edge(**overrides) -> Edge:
    return Edge(Settings(**overrides), RespClient("redis://127.0.0.1:1/0"))


def make_hit(edge: Edge, headers: dict[bytes, bytes], query: bytes = b"") -> Hit:
    scope = {"headers": list(headers.items()), "client": ("192.0.2.9", 1), "query_string": query, "method": "GET"}
    return Hit(edge, scope, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ids", "extra"),
    [
        (("team", "link", "", ""), ""),
        (("t\tab", "l\nx", "p\r", "b"), ""),
        (("team", "", "page", "block"), '{"email":"a@b.co","message":"tab\\there"}'),
        (("team", "", "page", "block"), "raw\ttab\nnewline"),
    ],
)
def test_event_lines_match_the_contract_encoder(ids, extra):
    edge = make_edge(country_header="cf-ipcountry", trusted_proxies=(ipaddress.ip_network("192.0.2.9/32"),))
    headers = {b"user-agent": ua.IPHONE.encode(), b"cf-ipcountry": b"de", b"referer": b"https://www.a.example/x"}
    hit = make_hit(edge, headers, b"qr=1")
    team, link, page, block = ids
    hit.emit(FORM if extra else CLICK, team, link_id=link, page_id=page, block_id=block, extra=extra)
    expected = Event(
        kind=FORM if extra else CLICK,
        ts_ms=int(hit.now * 1000),
        team_id=team,
        link_id=link,
        page_id=page,
        block_id=block,
        country="DE",
        device="mobile",
        os="ios",
        browser="safari",
        referrer="a.example",
        visitor=hit.visitor,
        bot=False,
        source="qr",
        extra=extra,
    )
    assert edge.emitter.buffer == [encode_event(expected)]


def test_hit_line_fills_every_named_column():
    edge = make_edge(country_header="cf-ipcountry", trusted_proxies=(ipaddress.ip_network("192.0.2.9/32"),))
    headers = {b"user-agent": ua.IPHONE.encode(), b"cf-ipcountry": b"de", b"referer": b"https://www.a.example/x"}
    hit = make_hit(edge, headers)
    hit.emit(FORM, "team-id", link_id="link-id", page_id="page-id", block_id="block-id", source="api", extra="{}")
    [line] = edge.emitter.buffer
    parts = line.split("\t")
    assert len(parts) == events.COLUMNS
    assert parts[events.COL_VERSION] == events.EVENT_VERSION
    assert parts[events.COL_KIND] == FORM
    assert parts[events.COL_TS] == str(int(hit.now * 1000))
    assert parts[events.COL_TEAM] == "team-id"
    assert parts[events.COL_LINK] == "link-id"
    assert parts[events.COL_PAGE] == "page-id"
    assert parts[events.COL_BLOCK] == "block-id"
    assert parts[events.COL_COUNTRY] == "DE"
    assert parts[events.COL_DEVICE] == "mobile"
    assert parts[events.COL_OS] == "ios"
    assert parts[events.COL_BROWSER] == "safari"
    assert parts[events.COL_REFERRER] == "a.example"
    assert parts[events.COL_VISITOR] == hit.visitor != ""
    assert parts[events.COL_BOT] == "0"
    assert parts[events.COL_SOURCE] == "api"
    assert parts[events.COL_EXTRA] == "{}"
    assert decode_event(line) == Event(
        kind=FORM,
        ts_ms=int(hit.now * 1000),
        team_id="team-id",
        link_id="link-id",
        page_id="page-id",
        block_id="block-id",
        country="DE",
        device="mobile",
        os="ios",
        browser="safari",
        referrer="a.example",
        visitor=hit.visitor,
        source="api",
        extra="{}",
    )


def test_local_cache_lru_ttl_negative_and_generation(monkeypatch):
    cache: LocalCache[str] = LocalCache(size=2, ttl=10, negative_ttl=1)
    g = cache.generation
    cache.put("a", "A", g)
    cache.put("b", "B", g)
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("c", "C", g)
    assert cache.get("b") is None and cache.get("a") == "A" and cache.get("c") == "C"
    cache = LocalCache(size=10, ttl=10, negative_ttl=1)
    cache.put("a", "A", g)
    cache.put("gone", MISSING, g)
    assert cache.get("gone") is MISSING
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 5)
    assert cache.get("gone") is None  # negative entries live shorter
    assert cache.get("a") == "A"
    monkeypatch.setattr(time, "monotonic", lambda: now + 11)
    assert cache.get("a") is None  # the TTL is a safety net
    stale = cache.generation
    cache.invalidate("x")
    cache.put("x", "fetched before the invalidation", stale)
    assert cache.get("x") is None
    off: LocalCache[str] = LocalCache(size=10, ttl=10, negative_ttl=1, enabled=False)
    off.put("a", "A", off.generation)
    assert off.get("a") is None


def test_local_cache_demoted_entries_are_only_a_fallback(monkeypatch):
    cache: LocalCache[str] = LocalCache(size=10, ttl=10, negative_ttl=1)
    g = cache.generation
    for key in ("a", "b", "c"):
        cache.put(key, key.upper(), g)
    cache.put("gone", MISSING, g)
    before = cache.generation
    cache.demote()
    cache.put("a", "fetched before the demotion", before)
    assert cache.get("a") is None and cache.get("b") is None  # asked of Redis again
    assert (cache.stale("a"), cache.stale("b"), cache.stale("gone")) == ("A", "B", MISSING)
    cache.put("a", "A2", cache.generation)  # refilled: the fresh entry is served, the old one is gone
    assert cache.get("a") == "A2" and cache.stale("a") is None
    cache.invalidate("b")  # an invalidation since: the old record must never be served
    assert cache.stale("b") is None
    cache.demote()  # a second resubscribe before "c" was refilled keeps it, and keeps the newer "a"
    assert (cache.stale("a"), cache.stale("c")) == ("A2", "C")
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 5)
    assert cache.stale("gone") is None and cache.stale("c") == "C"  # each keeps its own expiry
    monkeypatch.setattr(time, "monotonic", lambda: now + 11)
    assert cache.stale("c") is None
    cache.put("x", "X", cache.generation)
    cache.demote()
    cache.clear()
    assert cache.stale("x") is None


def test_visitor_hash_rotates_daily():
    hasher = VisitorHasher("salt")
    day = 1_790_000_000.0
    a = hasher("203.0.113.1", b"UA", day)
    assert len(a) == 16 and int(a, 16) >= 0
    assert hasher("203.0.113.1", b"UA", day + 60) == a
    assert hasher("203.0.113.2", b"UA", day) != a
    assert hasher("203.0.113.1", b"UA", day + 86400) != a
    assert VisitorHasher("other")("203.0.113.1", b"UA", day) != a
    assert 0 <= bucket_of(a) <= 99


def test_visitor_memo_is_bounded_and_gives_the_same_hashes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(VisitorHasher, "MEMO_MAX", 4)
    memo, fresh = VisitorHasher("salt"), VisitorHasher("salt")
    day = 1_790_000_000.0
    for i in range(10):
        ip = f"203.0.113.{i}"
        assert memo(ip, b"UA", day) == memo(ip, b"UA", day + 1)  # the second one from the memo
        assert len(memo._memo) <= 4
    # Evicted or not, every hash is what a hasher without a memo computes.
    assert [memo(f"203.0.113.{i}", b"UA", day) for i in range(10)] == [
        fresh(f"203.0.113.{i}", b"UA", day) for i in range(10)
    ]


def test_cookies():
    header = 'a=1; le_ab_x=42; b="q"'
    assert read_cookie(header, "le_ab_x") == "42" and read_cookie(header, "b") == "q"
    assert read_cookie(header, "le_ab") is None
    assert read_bucket(header, "le_ab_x") == 42
    assert read_bucket("le_ab_x=100", "le_ab_x") is None and read_bucket("le_ab_x=-1", "le_ab_x") is None


def test_client_ip():
    direct = create_client_ip(())
    assert direct("198.51.100.1", "203.0.113.5") == "198.51.100.1"
    behind = create_client_ip((ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")))
    assert behind("10.0.0.1", "203.0.113.5") == "203.0.113.5"
    assert behind("10.0.0.1", "203.0.113.5, 10.2.2.2") == "203.0.113.5"
    assert behind("fd00::1", "2001:db8::5") == "2001:db8::5"
    assert behind("10.0.0.1", "garbage") == "10.0.0.1"
    assert behind("10.0.0.1", "") == "10.0.0.1"
    assert behind("198.51.100.1", "203.0.113.5") == "198.51.100.1"


def test_clean_country():
    assert [clean_country(v) for v in ("ca", " US ", "XX", "T1", "CAN", "")] == ["CA", "US", "", "", "", ""]


def test_geoip_missing_or_broken_file(tmp_path):
    assert GeoIP(str(tmp_path / "none.mmdb")).country("8.8.8.8") == ""
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    assert GeoIP(str(broken)).country("8.8.8.8") == ""
    assert GeoIP("").country("8.8.8.8") == ""


def test_geoip_reads_both_record_shapes(tmp_path):
    path = tmp_path / "c.mmdb"
    write_mmdb(path, {"203.0.113.0/24": {"country_code": "CA"}, "198.51.100.0/24": {"country": {"iso_code": "de"}}})
    geo = GeoIP(str(path))
    assert geo.available
    assert (geo.country("203.0.113.77"), geo.country("198.51.100.1"), geo.country("192.0.2.1")) == ("CA", "DE", "")
    assert geo.country("not an ip") == "" and geo.country("2001:db8::1") == ""
    geo.close()


@pytest.mark.parametrize(
    ("bio", "public", "host", "expected"),
    [
        ("http://bio.test", "http://sho.rt", b"bio.test", True),
        ("http://bio.test", "http://sho.rt", b"BIO.TEST:8080", True),
        ("http://bio.test", "http://sho.rt", b"sho.rt", False),
        ("http://localhost:8081", "http://localhost:8080", b"localhost:8081", True),
        ("http://localhost:8081", "http://localhost:8080", b"localhost:8080", False),
        ("http://localhost", "http://localhost:8080", b"localhost:8080", False),
        ("http://same.test", "http://same.test", b"same.test", False),
        ("", "http://sho.rt", b"bio.test", False),
    ],
)
def test_bio_host_matching(bio, public, host, expected):
    edge = make_edge(bio_base_url=bio, public_base_url=public)
    assert edge.bio_hosts == bio_hosts(bio, public)
    assert edge.is_bio_host(host) is expected


def test_passwords():
    stored = hash_password("correct horse", 1000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert check_password(stored, "correct horse")
    assert not check_password(stored, "Correct horse")
    for bad in ("", "pbkdf2_sha256$x$00$00", "md5$1$00$00", "pbkdf2_sha256$99999999$00$00", "pbkdf2_sha256$1$zz$00"):
        assert not check_password(bad, "x")


def test_misc_helpers():
    assert merge_query("https://e.x/p?a=1&a=2&b=3", "a=9") == "https://e.x/p?b=3&a=9"
    assert merge_query("https://e.x/p", "qr=1") == "https://e.x/p"
    assert location("https://e.x/ä b") == b"https://e.x/%C3%A4%20b"
    assert etag_matches(b"*", b'"x"') and etag_matches(b'"a", W/"x"', b'"x"') and not etag_matches(b'"y"', b'"x"')
    assert valid_email("a.b+c@sub.example.co") and not valid_email("a@b") and not valid_email("<a>@b.co")
    assert clean_fields({"email": "a@b.co", "_token": "x", "name": " "}) == ({"email": "a@b.co"}, "")
    assert clean_fields({"email": "a@b.co", **{f"f{i}": "v" for i in range(10)}})[1]
