"""The catalogue as this agent knows it: learned from the coordinator, cached for offline starts.

When it starts, the agent asks its coordinators for ``GET /v1/network/catalogue`` (the first that
answers wins) and keeps the answer in its cache directory. A model an operator adds to the
coordinator is therefore known to every agent at its next start, with no agent release. Without a
coordinator in reach the last cached catalogue serves, and before any was ever cached, the seed.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from agent import paths
from protocol.catalogue import SEED, CatalogueModel, NetworkCatalogue, PublishedModel

log = logging.getLogger(__name__)

CATALOGUE_PATH = "/v1/network/catalogue"
MAX_CATALOGUE_BYTES = 8 << 20
FETCH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class KnownCatalogue:
    models: tuple[CatalogueModel, ...]
    source: str  # the coordinator's URL, "cache" or "seed"

    def prices(self) -> dict[str, tuple[int, int]]:
        return {
            m.id: (m.price_input_per_1m, m.price_output_per_1m)
            for m in self.models if isinstance(m, PublishedModel)
        }


def catalogue_url(base: str) -> str:
    """The catalogue endpoint for a coordinator given by its http(s) or ws(s) base URL."""
    parts = urlsplit(base)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/").removesuffix("/v1/nodes/connect")
    return urlunsplit((scheme, parts.netloc, path + CATALOGUE_PATH, "", ""))


def learn(coordinators: Sequence[str], *, timeout_s: float = FETCH_TIMEOUT_S) -> KnownCatalogue:
    """The coordinators' catalogue (cached on the way), else the cached one, else the seed."""
    for base in coordinators:
        try:
            listing = fetch(base, timeout_s)
        except (OSError, ValueError) as exc:
            log.info("no catalogue from %s: %s", base, exc)
            continue
        _save(listing)
        return KnownCatalogue(listing.data, base)
    cached = _load()
    if cached is not None:
        return KnownCatalogue(cached.data, "cache")
    return KnownCatalogue(SEED, "seed")


def fetch(base: str, timeout_s: float = FETCH_TIMEOUT_S) -> NetworkCatalogue:
    url = catalogue_url(base)
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"unsupported coordinator URL {base!r}")
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body = response.read(MAX_CATALOGUE_BYTES + 1)
    if len(body) > MAX_CATALOGUE_BYTES:
        raise ValueError(f"the catalogue at {url} exceeds {MAX_CATALOGUE_BYTES} bytes")
    try:
        return NetworkCatalogue.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(f"the catalogue at {url} does not read: {exc}") from exc


def _cache_file() -> str:
    return str(paths.cache_dir() / "catalogue.json")


def _save(listing: NetworkCatalogue) -> None:
    try:
        paths.cache_dir().mkdir(parents=True, exist_ok=True)
        with open(_cache_file(), "w") as handle:
            handle.write(listing.model_dump_json())
    except OSError as exc:  # a cache is a convenience: never fail a start over it
        log.warning("could not cache the catalogue: %s", exc)


def _load() -> NetworkCatalogue | None:
    try:
        with open(_cache_file()) as handle:
            return NetworkCatalogue.model_validate(json.load(handle))
    except (OSError, ValueError):
        return None

