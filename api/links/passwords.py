"""Link passwords, stored in the one format the edge verifies:
``pbkdf2_sha256$<iterations>$<salt_hex>$<hash_hex>`` (see redirector/forms.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import os

ITERATIONS = 260_000
SALT_BYTES = 16


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` in a worker thread: PBKDF2 is deliberately slow (~0.1 s)."""
    return await asyncio.to_thread(hash_password, password)
