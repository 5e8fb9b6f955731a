"""Visitor identity without storing IPs: a salted hash that rotates daily, and A/B buckets.

``visitor = blake2b(ip + "\\0" + ua, key=daily_key, digest_size=8).hexdigest()`` where the key is
derived from ``VISITOR_SALT`` and the UTC date, so the same person is one visitor within a day
and cannot be linked across days or reversed to an IP.
"""

from __future__ import annotations

import hashlib
import time

SPLIT_COOKIE_PREFIX = "le_ab_"
SPLIT_COOKIE_MAX_AGE = 90 * 86400


class VisitorHasher:
    """``hasher(ip, ua, now)`` -> 16 hex chars; the daily key is re-derived when the date changes.

    ``ua`` is the raw User-Agent header (at most 512 bytes are hashed).

    A visitor clicks more than once (a bio page view and its block clicks, several links in
    one newsletter), so the day's hashes are memoised per ``(ip, ua)``: a dict lookup instead of
    a keyed BLAKE2b on the hot path. The memo holds hashes only (no IPs leave the process) and
    is emptied when the day, and with it the key, changes.
    """

    MEMO_MAX = 16_384

    def __init__(self, salt: str) -> None:
        self._salt = salt.encode()
        self._day = -1
        self._base = hashlib.blake2b(digest_size=8)
        self._memo: dict[tuple[str, bytes], str] = {}

    def key_for(self, now: float) -> bytes:
        date = time.strftime("%Y-%m-%d", time.gmtime(int(now // 86400) * 86400)).encode()
        return hashlib.blake2b(self._salt + b"\0" + date, digest_size=32, person=b"linkedge-visitor").digest()

    def __call__(self, ip: str, ua: bytes, now: float) -> str:
        ua = ua[:512]
        day = int(now // 86400)
        if day != self._day:
            # Keyed once per day; copying the keyed state skips re-hashing the key block per call.
            self._base = hashlib.blake2b(key=self.key_for(now), digest_size=8)
            self._day = day
            self._memo.clear()
        memo = self._memo
        visitor = memo.get((ip, ua))
        if visitor is None:
            h = self._base.copy()
            h.update(ip.encode())
            h.update(b"\0")
            h.update(ua)
            visitor = h.hexdigest()
            if len(memo) >= self.MEMO_MAX:
                del memo[next(iter(memo))]  # oldest first
            memo[ip, ua] = visitor
        return visitor


def bucket_of(visitor: str) -> int:
    """A visitor's 0..99 A/B bucket, for when it has no cookie yet."""
    return int(visitor[:8], 16) % 100 if visitor else 0


def split_cookie_name(link_id: str) -> str:
    return SPLIT_COOKIE_PREFIX + link_id.replace("-", "")


def read_cookie(header: str, name: str) -> str | None:
    """One cookie's value from a Cookie header, without parsing the others."""
    if name not in header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip('"')
    return None


def read_bucket(header: str, name: str) -> int | None:
    value = read_cookie(header, name)
    if value is None or not value.isdigit() or len(value) > 2:
        return None
    return int(value)
