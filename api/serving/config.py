"""What the read model needs to know about a deployment: its Redis key prefix and public URLs.

The API and the worker both build serving records, so both carry one of these (``Settings.serving``
in each); nothing else of the API's settings reaches this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kit.postgres import Row
from redirector.keys import KEY_PREFIX
from redirector.settings import base_url, bio_page_url

DEFAULT_PUBLIC_BASE_URL = "http://localhost:8080"


@dataclass(frozen=True)
class ServingConfig:
    key_prefix: str = KEY_PREFIX
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    bio_base_url: str = ""  # empty: bio pages live at PUBLIC_BASE_URL/@handle

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServingConfig:
        return cls(
            key_prefix=env.get("KEY_PREFIX", KEY_PREFIX),
            public_base_url=base_url("PUBLIC_BASE_URL", env.get("PUBLIC_BASE_URL", DEFAULT_PUBLIC_BASE_URL)),
            bio_base_url=base_url("BIO_BASE_URL", env.get("BIO_BASE_URL", "")),
        )

    def short_url(self, code: str, hostname: str | None = None) -> str:
        """The public URL of a link: on its team's domain (always https: TLS is on-demand there), else
        on ``PUBLIC_BASE_URL``."""
        return f"https://{hostname}/{code}" if hostname else f"{self.public_base_url}/{code}"

    def page_url(self, page: Row) -> str:
        """Public URL of a page row (:data:`api.serving.queries.PAGE_COLUMNS`): the root of its team
        domain once that is verified, else :meth:`bio_url`."""
        if page["domain_hostname"] and page["domain_verified"]:
            return f"https://{page['domain_hostname']}/"
        return self.bio_url(page["handle"])

    def bio_url(self, handle: str) -> str:
        """Public URL of a bio page: ``/{handle}`` on a bio host of its own, else ``/@{handle}``."""
        return bio_page_url(self.bio_base_url, self.public_base_url, handle)
