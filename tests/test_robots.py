from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from crawler.errors import DisallowedByRobots, TransientFetchError
from crawler.robots import RobotsCache, robots_agent_token

ROBOTS = """
User-agent: *
Disallow: /admin/
Crawl-delay: 2

User-agent: policy-crawler
Disallow: /private/
Crawl-delay: 0.5
"""


def run(handler: Callable[[httpx.Request], httpx.Response], urls: list[str]) -> tuple[list[str], RobotsCache]:
    async def go() -> tuple[list[str], RobotsCache]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            cache = RobotsCache(client, "policy-crawler/0.1 (+https://example.org)")
            verdicts = []
            for url in urls:
                try:
                    await cache(url)
                    verdicts.append("allowed")
                except DisallowedByRobots:
                    verdicts.append("disallowed")
                except TransientFetchError as exc:
                    verdicts.append(exc.reason)
            return verdicts, cache

    return asyncio.run(go())


def test_our_group_applies_and_is_fetched_once_per_origin() -> None:
    verdicts, cache = run(
        lambda r: httpx.Response(200, text=ROBOTS),
        ["http://a.test/private/x", "http://a.test/admin/x", "http://a.test/ok", "http://b.test/private/y"],
    )
    # our own group replaces '*': /admin/ is allowed for us, /private/ is not
    assert verdicts == ["disallowed", "allowed", "allowed", "disallowed"]
    assert cache.fetches == 2


def test_crawl_delay_is_read_and_bounded() -> None:
    async def go(text: str) -> float | None:
        transport = httpx.MockTransport(lambda r: httpx.Response(200, text=text))
        async with httpx.AsyncClient(transport=transport) as client:
            return await RobotsCache(client, "policy-crawler/0.1").crawl_delay("http://a.test/")

    assert asyncio.run(go(ROBOTS)) == 0.5
    assert asyncio.run(go("User-agent: *\nCrawl-delay: 86400\n")) == 60.0
    assert asyncio.run(go("User-agent: *\nDisallow:\n")) is None


@pytest.mark.parametrize("status", [404, 403, 410])
def test_client_error_means_everything_allowed(status: int) -> None:
    verdicts, _ = run(lambda r: httpx.Response(status), ["http://a.test/private/x"])
    assert verdicts == ["allowed"]


def test_server_error_or_unreachable_means_not_now() -> None:
    verdicts, _ = run(lambda r: httpx.Response(503), ["http://a.test/x"])
    assert verdicts == ["robots_unavailable"]

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    verdicts, _ = run(refuse, ["http://a.test/x"])
    assert verdicts == ["robots_unavailable"]


def test_robots_redirect_is_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a.test":
            return httpx.Response(301, headers={"location": "http://www.a.test/robots.txt"})
        return httpx.Response(200, text="User-agent: *\nDisallow: /\n")

    verdicts, _ = run(handler, ["http://a.test/x"])
    assert verdicts == ["disallowed"]


def test_concurrent_checks_share_one_fetch() -> None:
    async def go() -> int:
        async def slow(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.05)
            return httpx.Response(200, text=ROBOTS)

        async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
            cache = RobotsCache(client, "policy-crawler/0.1")
            await asyncio.gather(*(cache(f"http://a.test/{i}") for i in range(20)))
            return cache.fetches

    assert asyncio.run(go()) == 1


class DictStore:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, origin: str) -> str | None:
        return self.data.get(origin)

    def set(self, origin: str, text: str, ttl: float) -> None:
        self.data[origin] = text


def test_shared_store_saves_fetches_across_caches() -> None:
    shared = DictStore()

    async def go() -> list[int]:
        counts = []
        for _ in range(3):
            transport = httpx.MockTransport(lambda r: httpx.Response(200, text=ROBOTS))
            async with httpx.AsyncClient(transport=transport) as client:
                cache = RobotsCache(client, "policy-crawler/0.1", shared=shared)
                with pytest.raises(DisallowedByRobots):
                    await cache("http://a.test/private/1")
                counts.append(cache.fetches)
        return counts

    assert asyncio.run(go()) == [1, 0, 0]


def test_agent_token() -> None:
    assert robots_agent_token("policy-crawler/0.1 (+https://x)") == "policy-crawler"
    assert robots_agent_token("MyBot") == "MyBot"


def test_blocked_origin_is_a_permanent_error_not_robots_unavailable() -> None:
    from crawler.errors import BlockedAddress

    def blocked(request: httpx.Request) -> httpx.Response:
        raise BlockedAddress("loopback", url=str(request.url))

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(blocked)) as client:
            await RobotsCache(client, "policy-crawler/0.1")("http://a.test/x")

    with pytest.raises(BlockedAddress):
        asyncio.run(go())
