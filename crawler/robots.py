"""robots.txt per origin: fetched once, cached, honoured for every fetch (RFC 9309).

* 2xx: parsed with protego; its rules and Crawl-delay apply.
* 4xx (e.g. no robots.txt): everything is allowed.
* 5xx, timeouts, connection errors: the origin is treated as fully disallowed *for now* and the
  URL fails as transient (``robots_unavailable``), so it is retried later rather than lost.

The cache is an in-memory dict by default; the distributed mode passes a ``shared`` store (Redis)
so that all workers fetch each robots.txt once between them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from protego import Protego

from crawler.errors import BlockedAddress, DisallowedByRobots, FetchError, RobotsUnavailable
from crawler.netpolicy import NetworkPolicy
from crawler.urls import origin_of

ROBOTS_MAX_BYTES = 512_000
ROBOTS_TTL = 24 * 3600.0
ROBOTS_FAILURE_TTL = 60.0
MAX_CRAWL_DELAY = 60.0  # a hostile Crawl-delay must not stall a crawl for hours
ALLOW_ALL = ""  # cached text meaning "no robots.txt: everything allowed"


class SharedRobotsStore(Protocol):
    """Where several processes share robots.txt bodies (e.g. Redis)."""

    def get(self, origin: str) -> str | None: ...

    def set(self, origin: str, text: str, ttl: float) -> None: ...


@dataclass(slots=True)
class _Entry:
    parser: Protego | None  # None: robots.txt unavailable (transient)
    expires: float


def robots_agent_token(user_agent: str) -> str:
    """The product token that robots.txt groups match: "policy-crawler/0.1 (...)" -> "policy-crawler"."""
    return user_agent.split("/", 1)[0].split()[0] if user_agent.strip() else "*"


class RobotsCache:
    def __init__(
        self,
        client: httpx.AsyncClient,
        user_agent: str,
        *,
        shared: SharedRobotsStore | None = None,
        ttl: float = ROBOTS_TTL,
        policy: NetworkPolicy | None = None,
    ) -> None:
        """``policy``: checked on every robots.txt request whose host is an IP literal (redirects
        included) before the client is asked; names are checked by the client's own guard (see
        :func:`crawler.fetch.make_client`), which is the only check when it is None."""
        self.client = client
        self.policy = policy
        self.agent = robots_agent_token(user_agent)
        self.shared = shared
        self.ttl = ttl
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0  # robots.txt requests made, for tests and stats

    async def __call__(self, url: str) -> None:
        """Raise DisallowedByRobots (or a transient error) unless ``url`` may be fetched."""
        parser = await self.parser_for(url)
        if not parser.can_fetch(url, self.agent):
            raise DisallowedByRobots(f"robots.txt disallows {url}", url=url)

    async def crawl_delay(self, url: str) -> float | None:
        parser = await self.parser_for(url)
        delay = parser.crawl_delay(self.agent)
        return None if delay is None else min(float(delay), MAX_CRAWL_DELAY)

    async def parser_for(self, url: str) -> Protego:
        origin = origin_of(url)
        entry = self._entries.get(origin)
        if entry is None or entry.expires < time.monotonic():
            lock = self._locks.setdefault(origin, asyncio.Lock())
            async with lock:  # one fetch per origin, however many URLs wait on it
                entry = self._entries.get(origin)
                if entry is None or entry.expires < time.monotonic():
                    entry = await self._load(origin)
                    self._entries[origin] = entry
        if entry.parser is None:
            raise RobotsUnavailable(
                f"robots.txt of {origin} is unavailable; not fetching until it is", url=url
            )
        return entry.parser

    async def _load(self, origin: str) -> _Entry:
        now = time.monotonic()
        if self.shared is not None:
            text = self.shared.get(origin)
            if text is not None:
                return _Entry(Protego.parse(text), now + self.ttl)
        text = await self._download(origin)
        if text is None:
            return _Entry(None, now + ROBOTS_FAILURE_TTL)
        if self.shared is not None:
            self.shared.set(origin, text, self.ttl)
        return _Entry(Protego.parse(text), now + self.ttl)

    async def _download(self, origin: str) -> str | None:
        """robots.txt text, ALLOW_ALL for a 4xx, None when unavailable."""
        url = f"{origin}/robots.txt"
        self.fetches += 1
        try:
            for _ in range(5):  # RFC 9309: follow at least five redirects
                if self.policy is not None:
                    self.policy.check_literal_host(httpx.URL(url).host)
                async with self.client.stream("GET", url) as response:
                    if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    if 400 <= response.status_code < 500:
                        return ALLOW_ALL
                    if response.status_code >= 300:
                        return None
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) >= ROBOTS_MAX_BYTES:
                            break  # RFC 9309: parse at least the first 500 KiB
                    return bytes(body[:ROBOTS_MAX_BYTES]).decode("utf-8", errors="replace")
            return ALLOW_ALL  # too many redirects: treated as not found, like a 4xx
        except BlockedAddress:
            raise  # the origin itself is off limits: a permanent answer, not "robots unavailable"
        except (httpx.HTTPError, FetchError, OSError):
            return None
