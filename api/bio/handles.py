"""Bio page handles: the rules, the reserved words and readable generated handles."""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from collections.abc import Iterator

MAX_LENGTH = 64
HANDLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # always fullmatch()

# Paths the edge, the API or a future UI own on the bio host (``/{handle}``), plus words that would
# make a page look official. Compared case-insensitively.
RESERVED = frozenset(
    {
        "about", "account", "admin", "administrator", "api", "app", "assets", "auth", "b", "bio", "bio-pages",
        "blog", "cdn", "contact", "dashboard", "docs", "f", "favicon", "favicon-ico", "help", "healthz", "home",
        "index", "linkedge", "login", "logout", "metrics", "new", "null", "openapi", "p", "privacy", "readyz",
        "register", "robots", "root", "security", "settings", "signin", "signup", "sitemap", "static", "status",
        "support", "system", "terms", "undefined", "www",
    }
)  # fmt: skip


def handle_problem(handle: str) -> str | None:
    """Why ``handle`` cannot be used (a sentence fragment), or None when it is well-formed and free of
    reserved words. Whether it is taken is for the database to say."""
    if not handle:
        return "must not be empty"
    if len(handle) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if not HANDLE_RE.fullmatch(handle):
        return "may contain only letters, digits, '-' and '_', and must start with a letter or digit"
    if handle.lower() in RESERVED:
        return "is a reserved word"
    return None


def slugify(text: str) -> str:
    """A readable handle base: ``Acme Inc`` → ``acme-inc``, ``Café Déjà`` → ``cafe-deja``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9_]+", "-", ascii_text.lower()).strip("-_")
    slug = re.sub(r"-{2,}", "-", slug)[:48].strip("-_")
    return slug


def candidates(base: str) -> Iterator[str]:
    """Handles to try in order: ``base``, ``base-2``, ``base-3``…, then random suffixes.

    A base that is empty or not well-formed falls back to ``page``; a reserved base is skipped but its
    numbered forms are fine (``admin-2``).
    """
    if not base or not HANDLE_RE.fullmatch(base):
        base = "page"
    if base.lower() not in RESERVED:
        yield base
    for n in range(2, 50):
        suffix = f"-{n}"
        yield base[: MAX_LENGTH - len(suffix)] + suffix
    alphabet = string.ascii_lowercase + string.digits
    while True:
        suffix = "-" + "".join(secrets.choice(alphabet) for _ in range(6))
        yield base[: MAX_LENGTH - len(suffix)] + suffix
