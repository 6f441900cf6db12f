"""Per-host politeness for one process: a minimum delay between request starts and a cap on
requests in flight, per host. (The distributed mode enforces the same across workers in Redis.)

The delay and the cap come with each request (:class:`crawler.visit.Politeness` decides them
from the source, the command line and robots.txt). A host's cap is fixed by its first request;
its delay is the one each request asks for, counted from the previous start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(slots=True)
class _HostState:
    semaphore: asyncio.Semaphore
    #: The latest start reserved (it may lie ahead: a request sleeping until its turn).
    last_start: float = float("-inf")
    #: The latest start that happened (a turn may begin later than reserved: a busy event loop
    #: wakes its sleeper late, and the next turn must still keep the delay from it).
    last_actual: float = float("-inf")


class HostThrottle:
    def __init__(self) -> None:
        self._hosts: dict[str, _HostState] = {}

    def _state(self, host: str, concurrency: int) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _HostState(asyncio.Semaphore(max(1, concurrency)))
        return state

    async def acquire(self, host: str, *, delay: float, concurrency: int) -> None:
        """Take one of the host's request slots, then wait for its turn; :meth:`release` after."""
        state = self._state(host, concurrency)
        await state.semaphore.acquire()
        try:
            await self._wait_turn(state, delay)
        except BaseException:
            state.semaphore.release()
            raise

    def release(self, host: str) -> None:
        self._hosts[host].semaphore.release()

    async def wait_turn(self, host: str, *, delay: float) -> None:
        """Wait for the host's turn without a slot (a redirect hop of a request under way)."""
        await self._wait_turn(self._state(host, 1), delay)

    @staticmethod
    async def _wait_turn(state: _HostState, delay: float) -> None:
        # Reserve the start (no await between reading and moving it: one event loop), then sleep.
        now = time.monotonic()
        start = max(now, state.last_start + delay)
        state.last_start = start
        while start > now:
            await asyncio.sleep(start - now)
            now = time.monotonic()
            # the turn before this one may have begun late: the delay counts from when it did
            start = max(now, state.last_actual + delay)
            state.last_start = max(state.last_start, start)
        state.last_actual = max(state.last_actual, now)

    @asynccontextmanager
    async def slot(self, host: str, *, delay: float, concurrency: int) -> AsyncIterator[None]:
        """Hold one of the host's request slots, starting no sooner than its delay allows."""
        await self.acquire(host, delay=delay, concurrency=concurrency)
        try:
            yield
        finally:
            self.release(host)
