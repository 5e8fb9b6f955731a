"""``python -m workers``: run one worker process with settings from the environment."""

from __future__ import annotations

import asyncio
import logging
import os

import uvloop

from workers.settings import Settings
from workers.worker import create_worker


def main() -> None:
    """Run the worker until SIGINT/SIGTERM (what ``linkedge serve worker`` calls)."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    # arq takes the current loop; give it uvloop's.
    asyncio.set_event_loop(uvloop.new_event_loop())
    create_worker(Settings.from_env(os.environ)).run()


if __name__ == "__main__":
    main()
