from __future__ import annotations

import asyncio
import itertools
import time

from crawler.politeness import HostThrottle


async def _hit(
    throttle: HostThrottle, host: str, starts: list[float], *, delay: float, concurrency: int = 4
) -> None:
    async with throttle.slot(host, delay=delay, concurrency=concurrency):
        starts.append(time.monotonic())


def test_requests_to_one_host_are_spaced_by_the_delay() -> None:
    async def go() -> list[float]:
        throttle = HostThrottle()
        starts: list[float] = []
        await asyncio.gather(*(_hit(throttle, "a", starts, delay=0.1) for _ in range(5)))
        return sorted(starts)

    starts = asyncio.run(go())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.095


def test_a_turn_that_began_late_still_keeps_the_delay_before_the_next() -> None:
    """The event loop is busy when a request's turn comes (blocked here for 60 ms): that request
    starts late, and the one after it still waits the whole delay from that real start."""

    async def block_the_loop() -> None:
        await asyncio.sleep(0.09)
        time.sleep(0.06)  # a CPU-bound stretch on the loop: the sleeper due at 0.1 s wakes at ~0.15

    async def go() -> list[float]:
        throttle = HostThrottle()
        starts: list[float] = []
        await asyncio.gather(block_the_loop(), *(_hit(throttle, "a", starts, delay=0.1) for _ in range(3)))
        return sorted(starts)

    starts = asyncio.run(go())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] > 0.12  # the second request began late
    assert min(gaps) >= 0.099  # (the starts are read just after the throttle lets each go)


def test_hosts_do_not_wait_for_each_other() -> None:
    async def go() -> float:
        throttle = HostThrottle()
        starts: list[float] = []
        began = time.monotonic()
        await asyncio.gather(*(_hit(throttle, f"h{i}", starts, delay=0.5, concurrency=1) for i in range(10)))
        return time.monotonic() - began

    assert asyncio.run(go()) < 0.4


def test_per_host_concurrency_cap() -> None:
    async def go() -> int:
        throttle = HostThrottle()
        in_flight = peak = 0

        async def one() -> None:
            nonlocal in_flight, peak
            async with throttle.slot("a", delay=0.0, concurrency=2):
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.02)
                in_flight -= 1

        await asyncio.gather(*(one() for _ in range(10)))
        return peak

    assert asyncio.run(go()) == 2


def test_each_request_is_spaced_by_the_delay_it_asks_for() -> None:
    """A request asking for a longer delay (robots.txt's Crawl-delay came in) waits that long
    after the previous start; a redirect hop's turn (no slot) is spaced the same way."""

    async def go() -> list[float]:
        throttle = HostThrottle()
        starts: list[float] = []
        await _hit(throttle, "a", starts, delay=0.0)
        await _hit(throttle, "a", starts, delay=0.3)
        await throttle.wait_turn("a", delay=0.1)
        starts.append(time.monotonic())
        return starts

    first, second, hop = asyncio.run(go())
    assert second - first >= 0.29
    assert hop - second >= 0.095
