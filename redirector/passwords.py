"""Link passwords: the one stored format the API writes and the edge checks.

``pbkdf2_sha256$<iterations>$<salt_hex>$<hash_hex>``. PBKDF2 is deliberately slow, so both sides
run it in a worker thread (:func:`hash_password_async`, :func:`verify_password`). Stdlib only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 260_000
SALT_BYTES = 16
MAX_ITERATIONS = 5_000_000  # a corrupt record must not pin a CPU for minutes


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` in a worker thread."""
    return await asyncio.to_thread(hash_password, password)


def check_password(stored: str, password: str) -> bool:
    """Constant-time check of ``password`` against a stored hash; False for any malformed one."""
    try:
        algorithm, iterations_text, salt_hex, hash_hex = stored.split("$")
        iterations = int(iterations_text)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
    except ValueError:
        return False
    if algorithm != ALGORITHM or not 1 <= iterations <= MAX_ITERATIONS or not expected:
        return False
    actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8", "replace"), salt, iterations, len(expected))
    return hmac.compare_digest(actual, expected)


async def verify_password(stored: str, password: str) -> bool:
    """:func:`check_password` in a worker thread."""
    return await asyncio.to_thread(check_password, stored, password)
