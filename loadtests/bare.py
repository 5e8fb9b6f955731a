"""The baseline: a bare Starlette app answering every ``/{code}`` with a constant 302.

The benchmark serves it with exactly the edge's server settings (``redirector.serve``), so
the ratio edge / bare measures what the edge itself costs.

    python -m redirector.serve loadtests.bare:main --factory --port 8090 --workers 2
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

LOCATION = "https://example.com/"


async def redirect(request: Request) -> Response:
    return Response(status_code=302, headers={"location": LOCATION})


def create_app() -> Starlette:
    return Starlette(routes=[Route("/{code}", redirect, methods=["GET", "HEAD"])])


def main() -> Starlette:
    """Factory for ``redirector.serve`` / uvicorn ``--factory``."""
    return create_app()
