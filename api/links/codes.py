"""Short codes: the custom-slug rules, reserved words and random code generation."""

from __future__ import annotations

import re
import secrets
import string

BASE62 = string.digits + string.ascii_letters
RANDOM_CODE_LENGTH = 7
SLUG_PATTERN = re.compile(r"[A-Za-z0-9-]{3,64}")

# Paths the edge (or a reverse proxy in front of it) answers itself, plus words that would
# confuse people if they were somebody's short link. Compared case-insensitively.
RESERVED = frozenset(
    {
        "api",
        "healthz",
        "readyz",
        "metrics",
        "static",
        "assets",
        "robots.txt",
        "favicon.ico",
        "sitemap.xml",
        "admin",
        "docs",
        "openapi.json",
        "login",
        "logout",
        "signup",
        "settings",
        "dashboard",
        "well-known",
        "www",
        "app",
        "bio",
        "links",
        "link",
        "qr",
        "help",
        "support",
        "status",
    }
)


def is_reserved(code: str) -> bool:
    return code.lower() in RESERVED


def slug_problem(slug: str) -> str | None:
    """Why ``slug`` cannot be a custom short code, or None when it can."""
    if not SLUG_PATTERN.fullmatch(slug):
        return "must be 3 to 64 characters of letters, digits and hyphens"
    if is_reserved(slug):
        return f"'{slug}' is a reserved word"
    return None


def random_code(length: int = RANDOM_CODE_LENGTH) -> str:
    """A random base62 code that is never a reserved word."""
    while True:
        code = "".join(secrets.choice(BASE62) for _ in range(length))
        if not is_reserved(code):
            return code
