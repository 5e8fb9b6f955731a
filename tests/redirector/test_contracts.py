"""The shared contracts import only the stdlib, and their wire formats are stable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from redirector import events
from redirector.cache import LinkRecord, PageRecord, RecordError, decode_page, decode_record, encode_page, encode_record
from redirector.events import CLICK, FORM, Event, decode_batch, decode_event, encode_batch, encode_event
from redirector.rules import parse_rules
from tests.support import sql


def test_contracts_do_not_import_the_app() -> None:
    code = (
        "import sys, redirector.cache, redirector.events, redirector.rules, redirector.settings;"
        "bad = [m for m in ('starlette', 'redis', 'uvicorn', 'asyncpg') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"contracts imported {result.stdout.strip()}"


GOLDEN_V1 = (
    b'L1{"c":"summer24","e":0,"i":"d47f2e1a-8c3b-4a5d-9e6f-1234567890ab","m":5,'
    b'"q":1,"r":[{"conditions":{"country":["CA"]},"url":"https://acme.com/ca"}],'
    b'"s":301,"t":"team-1","u":"https://example.com/","x":1790812799.0}'
)


def test_record_v1_golden_bytes() -> None:
    rules = parse_rules([{"url": "https://acme.com/ca", "conditions": {"country": ["ca"]}}])
    record = LinkRecord(
        id="d47f2e1a-8c3b-4a5d-9e6f-1234567890ab",
        team_id="team-1",
        code="summer24",
        url="https://example.com/",
        status=301,
        enabled=False,
        expires_at=1790812799.0,
        forward_query=True,
        max_clicks=5,
        raw_rules=tuple(rules),
    )
    assert encode_record(record) == GOLDEN_V1
    decoded = decode_record(GOLDEN_V1)
    assert decoded.status == 301 and not decoded.enabled and decoded.forward_query
    assert decoded.rules[0].countries == frozenset({"CA"})


def test_record_defaults_stay_small() -> None:
    data = encode_record(LinkRecord(id="i", team_id="t", code="abc", url="https://x.io"))
    assert data == b'L1{"c":"abc","i":"i","t":"t","u":"https://x.io"}'
    assert decode_record(data).status == 302


@pytest.mark.parametrize(
    "data", [b"", b"L2{}", b"L1not json", b'L1{"i":"x"}', b'L1{"i":"i","t":"t","c":"c","u":"u","r":[{}]}']
)
def test_bad_records_raise_record_error(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode_record(data)


def test_page_record_roundtrip_keeps_html_verbatim() -> None:
    html = b'<!doctype html><p>"quoted"\n\tline</p>'
    page = PageRecord(id="p", team_id="t", handle="Acme", etag='"abc"', html=html, blocks={"b1": "https://x.io"})
    assert decode_page(encode_page(page)) == page


def test_event_roundtrip_and_sanitising() -> None:
    event = Event(kind=CLICK, ts_ms=1, team_id="t", link_id="l", referrer="evil\tcom\nx", bot=True)
    decoded = decode_event(encode_event(event))
    assert decoded is not None
    assert decoded.referrer == "evil com x" and decoded.bot and decoded.link_id == "l"


def test_event_batch_is_lenient() -> None:
    good = encode_event(Event(kind=FORM, ts_ms=5, team_id="t", extra='{"email":"a@b.c"}'))
    payload = encode_batch([good, "3\tc\t1\tt", "1\tc\tnot-a-number\tt", "1\tc\t7\tt"])
    events = list(decode_batch(payload))
    assert events[0] is not None and events[0].extra == '{"email":"a@b.c"}'
    assert events[1] is None and events[2] is None
    assert events[3] == Event(kind=CLICK, ts_ms=7, team_id="t")


def test_event_golden_line_and_named_columns() -> None:
    event = Event(
        kind=FORM,
        ts_ms=1_780_000_000_123,
        team_id="team",
        link_id="link",
        page_id="page",
        block_id="block",
        country="DE",
        device="mobile",
        os="ios",
        browser="safari",
        referrer="a.example",
        visitor="f00d",
        bot=True,
        source="bio",
        extra="{}",
        domain_id="dom",
        rule="2",
        variant="2.1",
        destination="0123456789ab",
        utm_source="news",
        utm_medium="email",
        utm_campaign="spring",
        region="GB|England",
        city="GB|England|Bracknell",
        asn="15169",
        network="datacenter",
    )
    line = encode_event(event)
    assert line == (
        "2\tf\t1780000000123\tteam\tlink\tpage\tblock\tDE\tmobile\tios\tsafari\ta.example\tf00d\t1\tbio\t{}\tdom"
        "\t2\t2.1\t0123456789ab\tnews\temail\tspring\tGB|England\tGB|England|Bracknell\t15169\tdatacenter"
    )
    parts = line.split("\t")
    assert len(parts) == events.COLUMNS
    named = {
        events.COL_VERSION: events.EVENT_VERSION,
        events.COL_KIND: event.kind,
        events.COL_TS: str(event.ts_ms),
        events.COL_TEAM: event.team_id,
        events.COL_LINK: event.link_id,
        events.COL_PAGE: event.page_id,
        events.COL_BLOCK: event.block_id,
        events.COL_COUNTRY: event.country,
        events.COL_DEVICE: event.device,
        events.COL_OS: event.os,
        events.COL_BROWSER: event.browser,
        events.COL_REFERRER: event.referrer,
        events.COL_VISITOR: event.visitor,
        events.COL_BOT: "1",
        events.COL_SOURCE: event.source,
        events.COL_EXTRA: event.extra,
        events.COL_DOMAIN: event.domain_id,
        events.COL_RULE: event.rule,
        events.COL_VARIANT: event.variant,
        events.COL_DESTINATION: event.destination,
        events.COL_UTM_SOURCE: event.utm_source,
        events.COL_UTM_MEDIUM: event.utm_medium,
        events.COL_UTM_CAMPAIGN: event.utm_campaign,
        events.COL_REGION: event.region,
        events.COL_CITY: event.city,
        events.COL_ASN: event.asn,
        events.COL_NETWORK: event.network,
    }
    assert sorted(named) == list(range(events.COLUMNS))
    assert {col: parts[col] for col in named} == named
    assert events.event_columns(event) == parts
    assert decode_event(line) == event
    assert events.BATCH_ID_FIELD == b"b" and events.EVENT_FIELD == b"e"


def test_version_1_lines_still_decode() -> None:
    """A line written by an edge of version 1 (17 columns) decodes, the version 2 fields empty;
    anything a version 1 line had past its last column is not read as a version 2 field."""
    v1 = "1\tc\t1780000000123\tteam\tlink\t\t\tDE\tmobile\tios\tsafari\ta.example\tf00d\t0\tqr\t\tdom"
    assert decode_event(v1) == Event(
        kind=CLICK,
        ts_ms=1_780_000_000_123,
        team_id="team",
        link_id="link",
        country="DE",
        device="mobile",
        os="ios",
        browser="safari",
        referrer="a.example",
        visitor="f00d",
        source="qr",
        domain_id="dom",
    )
    decoded = decode_event(v1 + "\tstray")
    assert decoded is not None and decoded.rule == ""


def test_each_dimension_comes_from_its_namesake_column() -> None:
    assert events.DIMENSIONS[: events.DENSE] == ("country", "device", "os", "browser", "referrer", "source")
    assert set(events.DIMENSIONS[events.DENSE :]) == {
        *("rule", "variant", "destination", "utm_source", "utm_medium", "utm_campaign"),
        *("region", "city", "network", "domain"),
    }
    values = {events.DIMENSION_FIELDS[d]: f"value of {d}" for d in events.DIMENSIONS}
    event = Event(kind=CLICK, ts_ms=1, team_id="t", **values)
    parts = encode_event(event).split("\t")
    assert [parts[col] for col in events.DIMENSION_COLUMNS] == [f"value of {d}" for d in events.DIMENSIONS]


def test_destination_id_matches_postgresql(database_url: str) -> None:
    url = "https://example.com/caf\u00e9?utm_source=x"
    computed = sql(database_url, "SELECT left(encode(sha256(convert_to($1, 'UTF8')), 'hex'), 12)", url)
    assert events.destination_id(url) == computed[0][0]
    assert len(events.destination_id("https://a.example/")) == 12
