"""Per-host politeness for one process: a minimum delay between request starts and a cap on
requests in flight, per host. (The distributed mode enforces the same across workers in Redis.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(slots=True)
class _HostState:
    semaphore: asyncio.Semaphore
    next_start: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class HostThrottle:
    def __init__(self, *, delay: float, concurrency: int) -> None:
        self.default_delay = delay
        self.default_concurrency = concurrency
        self._hosts: dict[str, _HostState] = {}
        self._delays: dict[str, float] = {}
        self._concurrency: dict[str, int] = {}

    def configure(self, host: str, *, delay: float | None = None, concurrency: int | None = None) -> None:
        """Set a host's own delay or concurrency (from its source, or robots.txt Crawl-delay)."""
        if delay is not None:
            self._delays[host] = delay
        if concurrency is not None and host not in self._hosts:
            self._concurrency[host] = concurrency

    def delay_for(self, host: str) -> float:
        return self._delays.get(host, self.default_delay)

    def _state(self, host: str) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            limit = self._concurrency.get(host, self.default_concurrency)
            state = self._hosts[host] = _HostState(asyncio.Semaphore(limit))
        return state

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of the host's request slots, starting no sooner than its delay allows."""
        state = self._state(host)
        async with state.semaphore:
            async with state.lock:
                # Reserve the next start time, then sleep without holding the lock.
                now = time.monotonic()
                start = max(now, state.next_start)
                state.next_start = start + self.delay_for(host)
            if start > now:
                await asyncio.sleep(start - now)
            yield
