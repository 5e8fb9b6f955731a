"""Routing rules: validated and normalised at write time, compiled once, evaluated purely.

A rule is ``{"url": ..., "conditions": {...}}`` or ``{"split": [{"url", "weight"}...], "conditions": {...}}``.
Conditions AND across keys and OR within a key's list. The first matching rule wins, else the
link's default URL. Headers are parsed once into :class:`Facts` by the edge, so evaluation is set
lookups and comparisons.

Stdlib only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

DEVICES = frozenset({"ios", "android", "windows", "macos", "linux", "chromeos", "mobile", "tablet", "desktop"})
BROWSERS = frozenset(
    {"chrome", "firefox", "safari", "edge", "opera", "samsung", "ie", "brave", "yandex", "uc", "other"}
)
CONDITION_KEYS = (
    "country",
    "device",
    "browser",
    "language",
    "query",
    "ip",
    "referrer_host",
    "after",
    "before",
)
MAX_RULES = 50
MAX_VALUES = 100

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RuleError(ValueError):
    """Invalid routing rules; ``errors`` lists ``(field, message)`` pairs for a 422."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about one request, parsed once from its headers (:meth:`redirector.hit.Hit.facts`)."""

    country: str | None = None
    devices: frozenset[str] = frozenset()
    browser: str | None = None
    languages: frozenset[str] = frozenset()
    query: Mapping[str, str] | None = None
    ip: IPAddress | None = None
    referrer_host: str | None = None
    now: float = 0.0
    bucket: int = 0  # 0..99, the visitor's sticky A/B bucket


def parse_accept_language(value: str, min_q: float = 0.9) -> frozenset[str]:
    """Language tags with q >= ``min_q``, lower-cased, each also contributing its primary subtag."""
    tags: set[str] = set()
    for part in value.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag or tag == "*":
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if q >= min_q:
            tags.add(tag)
            tags.add(tag.split("-", 1)[0])
    return frozenset(tags)


def referrer_host(referer: str) -> str | None:
    if not referer:
        return None
    try:
        host = urlsplit(referer).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule; ``None`` means the condition is absent (matches everything)."""

    urls: tuple[str, ...]
    cumulative_weights: tuple[int, ...] = (100,)
    countries: frozenset[str] | None = None
    devices: frozenset[str] | None = None
    browsers: frozenset[str] | None = None
    languages: frozenset[str] | None = None
    query: tuple[tuple[str, str | None], ...] | None = None
    networks: tuple[IPNetwork, ...] | None = None
    referrer_hosts: tuple[str, ...] | None = None
    after: float | None = None
    before: float | None = None

    @property
    def is_split(self) -> bool:
        return len(self.urls) > 1

    def matches(self, facts: Facts) -> bool:
        if self.countries is not None and facts.country not in self.countries:
            return False
        if self.devices is not None and self.devices.isdisjoint(facts.devices):
            return False
        if self.browsers is not None and facts.browser not in self.browsers:
            return False
        if self.languages is not None and self.languages.isdisjoint(facts.languages):
            return False
        if self.query is not None:
            query = facts.query or {}
            if not any(k in query and (v is None or query[k] == v) for k, v in self.query):
                return False
        if self.networks is not None:
            ip = facts.ip
            if ip is None or not any(ip in net for net in self.networks):
                return False
        if self.referrer_hosts is not None:
            host = facts.referrer_host
            if host is None or not any(host == h or host.endswith("." + h) for h in self.referrer_hosts):
                return False
        if self.after is not None and facts.now < self.after:
            return False
        if self.before is not None and facts.now >= self.before:
            return False
        return True

    def pick(self, bucket: int) -> tuple[str, int]:
        for i, bound in enumerate(self.cumulative_weights):
            if bucket < bound:
                return self.urls[i], i
        return self.urls[-1], len(self.urls) - 1


@dataclass(frozen=True, slots=True)
class Resolution:
    url: str
    rule: int | None = None  # index of the matching rule, None for the default
    variant: int | None = None  # index of the split variant, when the rule is a split


def resolve(rules: Sequence[Rule], facts: Facts, default: str) -> Resolution:
    """First matching rule decides; otherwise ``default``. Pure and allocation-light."""
    for index, rule in enumerate(rules):
        if rule.matches(facts):
            if rule.is_split:
                url, variant = rule.pick(facts.bucket)
                return Resolution(url, index, variant)
            return Resolution(rule.urls[0], index)
    return Resolution(default)


def compile_rules(normalised: Iterable[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Compile rules already normalised by :func:`parse_rules` (no validation here)."""
    return tuple(_compile(rule) for rule in normalised)


def _compile(rule: Mapping[str, Any]) -> Rule:
    c: Mapping[str, Any] = rule.get("conditions") or {}
    if "split" in rule:
        urls = tuple(v["url"] for v in rule["split"])
        total, cumulative = 0, []
        for v in rule["split"]:
            total += int(v["weight"])
            cumulative.append(total)
        weights = tuple(cumulative)
    else:
        urls, weights = (rule["url"],), (100,)

    def fset(key: str) -> frozenset[str] | None:
        return frozenset(c[key]) if key in c else None

    query = c.get("query")
    return Rule(
        urls=urls,
        cumulative_weights=weights,
        countries=fset("country"),
        devices=fset("device"),
        browsers=fset("browser"),
        languages=fset("language"),
        query=tuple((k, None if v == "*" else v) for k, v in query.items()) if query is not None else None,
        networks=tuple(ipaddress.ip_network(n, strict=False) for n in c["ip"]) if "ip" in c else None,
        referrer_hosts=tuple(c["referrer_host"]) if "referrer_host" in c else None,
        after=_epoch(c["after"]) if "after" in c else None,
        before=_epoch(c["before"]) if "before" in c else None,
    )


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


_UNSAFE_IN_URL = re.compile("[\x00-\x20\x7f]")  # C0 controls, space, DEL


def is_http_url(value: object) -> bool:
    """Absolute http(s) URL with a host; rejects ``javascript:``, ``data:`` and friends.

    Spaces, C0 control characters and DEL are refused anywhere in it: none may appear in an HTTP
    ``Location`` header, and browsers strip some of them silently, so the URL a visitor reaches
    would not be the one that was checked.
    """
    if not isinstance(value, str) or len(value) > 4096 or _UNSAFE_IN_URL.search(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_rules(raw: object, field: str = "routing_rules") -> list[dict[str, Any]]:
    """Validate user-supplied rules and return their normalised form (what is stored and echoed).

    Raises :class:`RuleError` naming every bad field, e.g. ``routing_rules[0].conditions.device``.
    """
    errors: list[tuple[str, str]] = []
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RuleError([(field, "must be an array of rules")])
    if len(raw) > MAX_RULES:
        raise RuleError([(field, f"at most {MAX_RULES} rules are allowed")])
    out: list[dict[str, Any]] = []
    for i, rule in enumerate(raw):
        path = f"{field}[{i}]"
        if not isinstance(rule, dict):
            errors.append((path, "must be an object with 'url' or 'split'"))
            continue
        unknown = sorted(set(rule) - {"url", "split", "conditions"})
        if unknown:
            errors.append((path, f"unknown key(s) {', '.join(unknown)}; expected url, split, conditions"))
        normal: dict[str, Any] = {}
        if ("url" in rule) == ("split" in rule):
            errors.append((path, "needs exactly one of 'url' or 'split'"))
        elif "url" in rule:
            if is_http_url(rule["url"]):
                normal["url"] = rule["url"]
            else:
                errors.append((f"{path}.url", "must be an absolute http(s) URL"))
        else:
            normal["split"] = _parse_split(rule["split"], f"{path}.split", errors)
        conditions = rule.get("conditions")
        if conditions is not None:
            normal["conditions"] = _parse_conditions(conditions, f"{path}.conditions", errors)
        elif "url" in rule:
            errors.append((f"{path}.conditions", "a rule with 'url' needs at least one condition"))
        out.append(normal)
    if errors:
        raise RuleError(errors)
    return out


def _parse_split(raw: object, path: str, errors: list[tuple[str, str]]) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not 2 <= len(raw) <= 4:
        errors.append((path, "must be an array of 2 to 4 {url, weight} variants"))
        return []
    variants, total = [], 0
    for j, v in enumerate(raw):
        vpath = f"{path}[{j}]"
        if not isinstance(v, dict) or set(v) != {"url", "weight"}:
            errors.append((vpath, "must be an object with exactly 'url' and 'weight'"))
            continue
        if not is_http_url(v["url"]):
            errors.append((f"{vpath}.url", "must be an absolute http(s) URL"))
        w = v["weight"]
        if not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 99:
            errors.append((f"{vpath}.weight", "must be an integer from 1 to 99"))
        else:
            total += w
        variants.append({"url": v["url"], "weight": w})
    if len(variants) == len(raw) and total != 100 and not any(e[0].startswith(path) for e in errors):
        errors.append((path, f"weights must sum to 100, not {total}"))
    return variants


def _string_list(raw: object, path: str, errors: list[tuple[str, str]]) -> list[str] | None:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x for x in raw):
        errors.append((path, "must be a non-empty array of strings"))
        return None
    if len(raw) > MAX_VALUES:
        errors.append((path, f"at most {MAX_VALUES} values"))
        return None
    return list(dict.fromkeys(raw))


def _parse_conditions(raw: object, path: str, errors: list[tuple[str, str]]) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        errors.append((path, "must be a non-empty object"))
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        kpath = f"{path}.{key}"
        if key not in CONDITION_KEYS:
            errors.append((kpath, f"unknown condition '{key}'; expected one of {', '.join(CONDITION_KEYS)}"))
            continue
        if key in ("after", "before"):
            if not isinstance(value, str):
                errors.append((kpath, "must be an RFC 3339 timestamp"))
                continue
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                errors.append((kpath, f"'{value}' is not an RFC 3339 timestamp"))
                continue
            if moment.tzinfo is None:
                errors.append((kpath, "timestamp needs a timezone (e.g. Z)"))
                continue
            out[key] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            continue
        if key == "query":
            if not isinstance(value, dict) or not value:
                errors.append((kpath, 'must be an object of param -> value ("*" for any value)'))
                continue
            bad = [k for k, v in value.items() if not k or not isinstance(v, str)]
            if bad:
                errors.append((kpath, f"values must be strings; bad param(s): {', '.join(map(str, bad))}"))
                continue
            out[key] = dict(value)
            continue
        values = _string_list(value, kpath, errors)
        if values is None:
            continue
        if key == "country":
            norm = [v.upper() for v in values]
            bad = [v for v in values if len(v) != 2 or not v.isascii() or not v.isalpha()]
            if bad:
                errors.append((kpath, f"not ISO 3166-1 alpha-2 code(s): {', '.join(bad)}"))
                continue
            out[key] = list(dict.fromkeys(norm))
        elif key == "device":
            norm = [v.lower() for v in values]
            bad = [v for v, n in zip(values, norm, strict=True) if n not in DEVICES]
            if bad:
                expected = ", ".join(sorted(DEVICES))
                errors.append((kpath, f"unknown device(s) {', '.join(bad)}; expected one of {expected}"))
                continue
            out[key] = norm
        elif key == "browser":
            norm = [v.lower() for v in values]
            bad = [v for v, n in zip(values, norm, strict=True) if n not in BROWSERS]
            if bad:
                errors.append(
                    (kpath, f"unknown browser(s) {', '.join(bad)}; expected one of {', '.join(sorted(BROWSERS))}")
                )
                continue
            out[key] = norm
        elif key == "language":
            norm = [v.lower() for v in values]
            bad = [v for v in norm if not all(p.isalnum() and p.isascii() for p in v.split("-")) or len(v) > 35]
            if bad:
                errors.append((kpath, f"not language tag(s): {', '.join(bad)}"))
                continue
            out[key] = norm
        elif key == "ip":
            bad = []
            for v in values:
                try:
                    ipaddress.ip_network(v, strict=False)
                except ValueError:
                    bad.append(v)
            if bad:
                errors.append((kpath, f"not IP address(es) or CIDR(s): {', '.join(bad)}"))
                continue
            out[key] = values
        elif key == "referrer_host":
            norm = [v.lower().removeprefix("www.") for v in values]
            bad = [v for v in norm if "/" in v or " " in v or "." not in v]
            if bad:
                errors.append((kpath, f"not host name(s): {', '.join(bad)}"))
                continue
            out[key] = norm
    if "after" in out and "before" in out and out["after"] >= out["before"]:
        errors.append((path, "'after' must be earlier than 'before'"))
    return out
