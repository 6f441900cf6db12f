from __future__ import annotations

import asyncio
import itertools
import time

from crawler.politeness import HostThrottle


async def _hit(throttle: HostThrottle, host: str, starts: list[float], hold: float = 0.0) -> None:
    async with throttle.slot(host):
        starts.append(time.monotonic())
        await asyncio.sleep(hold)


def test_requests_to_one_host_are_spaced_by_the_delay() -> None:
    async def go() -> list[float]:
        throttle = HostThrottle(delay=0.1, concurrency=4)
        starts: list[float] = []
        await asyncio.gather(*(_hit(throttle, "a", starts) for _ in range(5)))
        return sorted(starts)

    starts = asyncio.run(go())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.095


def test_hosts_do_not_wait_for_each_other() -> None:
    async def go() -> float:
        throttle = HostThrottle(delay=0.5, concurrency=1)
        starts: list[float] = []
        began = time.monotonic()
        await asyncio.gather(*(_hit(throttle, f"h{i}", starts) for i in range(10)))
        return time.monotonic() - began

    assert asyncio.run(go()) < 0.4


def test_per_host_concurrency_cap() -> None:
    async def go() -> int:
        throttle = HostThrottle(delay=0.0, concurrency=2)
        in_flight = peak = 0

        async def one() -> None:
            nonlocal in_flight, peak
            async with throttle.slot("a"):
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.02)
                in_flight -= 1

        await asyncio.gather(*(one() for _ in range(10)))
        return peak

    assert asyncio.run(go()) == 2


def test_configured_host_delay_overrides_default() -> None:
    throttle = HostThrottle(delay=1.0, concurrency=1)
    throttle.configure("slow.test", delay=3.0)
    assert throttle.delay_for("slow.test") == 3.0
    assert throttle.delay_for("other.test") == 1.0
