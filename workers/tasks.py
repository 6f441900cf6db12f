"""The crawl as Celery tasks: thin shells over the ``crawler/`` stages.

``crawler.fetch_page(url, source_id, depth, attempt=0, run=None, revisit=False)`` visits one page:

1. skip it when the store already has its outcome (a task delivered twice does the work once);
2. robots.txt (shared by all workers through Redis), then the host's turn: an atomic Redis
   reservation of the next start time and a request slot. A wait of up to
   ``throttle_max_sleep`` (0.1 s: the pool's slots are few, a sleeping one is lost to every
   other host) is slept; a longer one re-queues the task with a countdown, to come back at its
   turn of the host's virtual queue, instead of holding the worker. Right before sending, a
   last atomic check spaces the *actual* starts (a sleeper that woke late delays the next one);
3. fetch (every redirect hop is checked against robots.txt and waits for its own host's turn),
   then decode/links/extract in this very process (the prefork pool is the process pool);
4. queue the in-scope links nobody queued before (one atomic ``SADD`` each), store the document
   (insert-if-absent), record the URL state (upsert). Links are queued *before* the state is
   recorded: a crash in between makes the redelivered task visit the page again rather than
   lose its links.

Transient failures are retried with backoff (:func:`crawler.visit.retry_delay`), and recorded
``failed_transient`` once the retries are spent; permanent ones are recorded at once.

``crawler.crawl_source(source_id)`` starts a run of a source (beat sends it on the source's
schedule). A run honours every URL's next-visit time (:mod:`crawler.recrawl`): it queues the
start URLs and the known URLs whose next visit has come, and list pages found on the way when
they are new or due (claimed per run); articles already seen are never queued again by a link,
only by their own next visit. Re-visits are conditional requests: a 304 stores nothing, a
changed article is stored as its next version. URLs whose last visit failed transiently are
tried again, and those a page budget (``max_pages``) left over are resumed.

``run`` is the run's start (epoch seconds, also its name) and ``revisit`` marks a page claimed for
that run: such a page is done only when its stored outcome is newer than the run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import redis
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown
from celery.utils.log import get_task_logger

from crawler.dedup import Fingerprint
from crawler.document import utcnow
from crawler.errors import (
    DisallowedByRobots,
    FetchError,
    HostBusy,
    InternalError,
    InvalidURL,
    OverBudget,
    TimeLimitExceeded,
    UnknownSource,
    WorkerLost,
)
from crawler.fetch import Fetcher, FetchLimits, FetchResult, make_client
from crawler.links import PageKind, Scope
from crawler.pipeline import process_page
from crawler.records import failure_record
from crawler.recrawl import conditional_headers, is_due
from crawler.robots import RobotsCache
from crawler.sources import Source
from crawler.urls import canonicalize, host_of
from crawler.visit import (
    RetryPolicy,
    already_done,
    host_concurrency,
    host_delay,
    page_job,
    retry_delay,
    visit_state,
)
from settings import get_settings
from storage import StorageError, Store, UrlState, UrlStatus, open_store
from workers.app import WorkerConfig, app, bounded_countdown, send_fetch, visibility_timeout
from workers.routing import CRAWL_SOURCE, FETCH_PAGE
from workers.state import CrawlState, connect

log = get_task_logger(__name__)

T = TypeVar("T")

#: Failures of our own infrastructure (not of the crawled site): retried by Celery, URL untouched.
INFRA_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    StorageError,
)
INFRA_MAX_RETRIES = 8
#: Sources are re-read from the seeds directory at most this often (seconds).
SOURCES_TTL = 30.0
#: Tries of the final spacing check before a request gives up (and is retried later).
MAX_GO_TRIES = 50
#: Seconds a host's request slot outlives the page deadline (the turn's wait, the last spacing).
SLOT_LEASE_GRACE = 5.0
#: A task sent away to wait for its host comes back this much before its turn.
DEFER_EARLY = 0.02
#: At most this many earlier transient failures are re-tried by one run of a source.
MAX_RETRIES_PER_RUN = 10_000
#: At most this many pages whose next visit has come are queued by one run (the rest wait for
#: the next run, soonest first).
MAX_DUE_PER_RUN = 10_000
#: At most this many queued URLs (left by a page budget, or whose message may be lost) are
#: looked at by one run.
MAX_QUEUED_PER_RUN = 100_000


# -- per-process resources ------------------------------------------------------------------------


class Sources:
    """Source lookup for workers: the seeds directory first (re-read every SOURCES_TTL), then
    sources published in Redis (ad-hoc crawls, or seeds this worker's image lacks)."""

    def __init__(self, state: CrawlState) -> None:
        self.state = state
        self._seeds: dict[str, Source] = {}
        self._loaded_at = -SOURCES_TTL
        self._scopes: dict[str, tuple[Source, Scope]] = {}

    def get(self, source_id: str) -> Source | None:
        now = time.monotonic()
        if now - self._loaded_at >= SOURCES_TTL:
            from seeds import sources_report

            self._seeds = dict(sources_report().sources)
            self._loaded_at = now
        return self._seeds.get(source_id) or self.state.get_source(source_id)

    def scope(self, source: Source) -> Scope:
        cached = self._scopes.get(source.id)
        if cached is None or cached[0] != source:
            cached = self._scopes[source.id] = (source, Scope(source))
        return cached[1]


class Runtime:
    """What one worker process keeps between tasks: an event loop (an AsyncClient is bound to
    the loop it first ran on, so one loop for the process's life), one HTTP client, one store,
    one Redis client. Created lazily in the process that uses them (never before the fork)."""

    def __init__(self, settings: Any | None = None, *, sender: Celery | None = None) -> None:
        self.pid = os.getpid()
        self.settings = settings if settings is not None else get_settings()
        self.config = WorkerConfig.from_settings(self.settings)
        #: The app that child visits are sent through (the worker's own app unless told).
        self.sender = sender or app
        self.limits = FetchLimits.from_settings(self.settings)
        self.policy = RetryPolicy(
            max_retries=self.config.task_max_retries,
            base_delay=self.config.retry_base_delay,
            max_delay=self.config.retry_max_delay,
            ceiling=self.config.max_countdown,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._store: Store | None = None
        self._state: CrawlState | None = None
        self._robots: RobotsCache | None = None
        self._sources: Sources | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client(
                self.limits, allow_private_networks=self.settings.allow_private_networks, max_connections=20
            )
        return self._client

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.database_url)
        return self._store

    @property
    def state(self) -> CrawlState:
        if self._state is None:
            self._state = CrawlState(connect(self.config.redis_url), self.config.key_prefix)
        return self._state

    @property
    def robots(self) -> RobotsCache:
        if self._robots is None:
            self._robots = RobotsCache(self.client, self.limits.user_agent, shared=self.state.robots)
        return self._robots

    @property
    def sources(self) -> Sources:
        if self._sources is None:
            self._sources = Sources(self.state)
        return self._sources

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the process's loop; on any interruption (a soft time limit raised
        from a signal handler) cancel it, so the loop is clean for the next task."""
        loop = self.loop
        task = loop.create_task(coro)
        try:
            return loop.run_until_complete(task)
        except BaseException:
            if not task.done():
                task.cancel()
                try:
                    loop.run_until_complete(task)
                except BaseException:  # the cancellation itself; nothing to keep
                    pass
            raise

    def close(self) -> None:
        """Release everything (worker process shutdown). Idempotent."""
        if self._client is not None and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.run_until_complete(self._client.aclose())
            except Exception:  # closing on the way out: nothing useful to do about it
                log.debug("closing the HTTP client failed", exc_info=True)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()
        if self._store is not None:
            self._store.close()
        if self._state is not None:
            self._state.client.close()
        self._loop = self._client = self._store = self._state = self._robots = None


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """This process's :class:`Runtime` (a forked child gets its own, never its parent's)."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        _runtime = Runtime()
    return _runtime


@worker_process_init.connect
def _on_process_init(**_: Any) -> None:
    runtime()


@worker_process_shutdown.connect
def _on_process_shutdown(**_: Any) -> None:
    global _runtime
    if _runtime is not None and _runtime.pid == os.getpid():
        _runtime.close()
        _runtime = None


# -- one page visit -------------------------------------------------------------------------------


@dataclass(slots=True)
class Visit:
    """The arguments of one ``crawler.fetch_page`` message."""

    url: str
    source_id: str
    depth: int
    attempt: int = 0
    run: float | None = None
    revisit: bool = False

    @property
    def since(self) -> float | None:
        return self.run if self.revisit else None


@dataclass(slots=True)
class Result:
    """What a visit came to; the task shell turns ``retry``/``defer`` into a new message."""

    status: str
    countdown: float = 0.0
    error: FetchError | None = None
    queued: list[Visit] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "queued": len(self.queued), "countdown": round(self.countdown, 3)}


async def start_request(state: CrawlState, host: str, delay: float) -> None:
    """Right before a request: wait until the host's last actual start is ``delay`` ago and
    record this one (see :meth:`CrawlState.go`). Normally no wait at all: the reservation
    already spaced the starts; this catches a previous sender that woke up late."""
    for _ in range(MAX_GO_TRIES):
        wait, _ = state.go(host, delay=delay)
        if wait <= 0:
            return
        await asyncio.sleep(wait)
    raise HostBusy(f"{host} stayed busy; trying later")


class _HopGate:
    """The fetcher's per-hop hook: robots.txt for every hop, and for every redirect hop its own
    host's turn (the first hop's turn was taken by the task before fetching)."""

    def __init__(self, rt: Runtime, source: Source, scope: Scope) -> None:
        self.rt, self.source, self.scope = rt, source, scope
        self.hops = 0

    async def __call__(self, url: str) -> None:
        await self.rt.robots(url)
        self.hops += 1
        if self.hops == 1:
            return
        in_scope = self.scope.host_allowed(url)
        delay = host_delay(
            self.source if in_scope else None,
            self.rt.settings.per_host_delay,
            await self.rt.robots.crawl_delay(url),
        )
        host = host_of(url)
        wait = self.rt.state.reserve(host, delay=delay)
        if wait > 0:
            await asyncio.sleep(wait)
        await start_request(self.rt.state, host, delay)


async def visit_page(rt: Runtime, visit: Visit, *, retried: bool = False) -> Result:
    """Visit one page (see the module docstring). Raises only for infrastructure failures.

    ``retried``: this message is a retry of one that did not finish (an infrastructure failure
    may have cut it short after its links were claimed and before they were queued)."""
    state, store = rt.state, rt.store
    source = rt.sources.get(visit.source_id)
    if source is None:
        unknown = UnknownSource(f"no source {visit.source_id!r} in the seeds or in Redis")
        store.record_url(failure_record(visit.url, visit.source_id, visit.depth, unknown))
        return Result("unknown_source")
    previous = store.get_url(visit.url)
    if already_done(previous, visit.since):
        return Result("skipped")
    deliveries = state.start_delivery(visit.url)
    try:
        if deliveries > rt.config.max_deliveries:
            log.error("giving up %s: %d deliveries never finished", visit.url, deliveries - 1)
            lost = WorkerLost(f"the worker died {deliveries - 1} times on this page")
            store.record_url(
                failure_record(visit.url, visit.source_id, visit.depth, lost, attempts=visit.attempt + 1)
            )
            return Result("worker_lost")
        return await _visit(rt, visit, source, previous, redelivered=deliveries > 1 or retried)
    finally:
        state.finish_delivery(visit.url)


async def _visit(
    rt: Runtime, visit: Visit, source: Source, previous: UrlState | None, *, redelivered: bool
) -> Result:
    state, store = rt.state, rt.store
    scope = rt.sources.scope(source)
    url, depth, attempts = visit.url, visit.depth, visit.attempt + 1
    host = host_of(url)
    try:
        await rt.robots(url)
        delay = host_delay(source, rt.settings.per_host_delay, await rt.robots.crawl_delay(url))
        grant = state.try_start(
            host,
            delay=delay,
            max_wait=rt.config.throttle_max_sleep,
            cap=host_concurrency(source, rt.settings.per_host_concurrency),
            # The slot is held for the fetch alone, which the page deadline bounds: a killed
            # worker's slot comes back after that, not after the task's time limit.
            lease=rt.limits.page_deadline + delay + SLOT_LEASE_GRACE,
            holder=url,
        )
        if not grant.granted:
            # Not our turn for a while: free the worker and come back about when it will be
            # (the grant's wait is a turn of the host's virtual queue; a little early is fine,
            # the task then sleeps the rest). A full host: try again after about a delay.
            countdown = (
                max(0.0, grant.wait - DEFER_EARLY)
                if grant.why == "wait"
                else grant.wait * random.uniform(0.5, 1.5)
            )
            return Result("deferred", countdown=countdown)
        try:
            over_budget = (
                source.max_pages is not None
                and visit.run is not None
                and not state.take_budget(source.id, visit.run, source.max_pages)
            )
            if over_budget:
                # Over the page budget: kept queued, so that the next run resumes it.
                spent = OverBudget(f"{source.id}: max_pages spent")
                store.record_url(failure_record(url, source.id, depth, spent))
                return Result("over_budget")
            if grant.wait > 0:
                await asyncio.sleep(grant.wait)
            await start_request(state, host, delay)
            fetcher = Fetcher(
                rt.client,
                rt.limits,
                robots=_HopGate(rt, source, scope),
                block_private=not rt.settings.allow_private_networks,
            )
            result = await fetcher.fetch(
                url,
                headers=conditional_headers(previous),
                claim=_redirect_claim(rt, visit, redelivered=redelivered),
            )
        finally:
            state.release(host, grant.token)
    except DisallowedByRobots as exc:
        store.record_url(failure_record(url, source.id, depth, exc, attempts=attempts))
        return Result("disallowed")
    except FetchError as exc:
        delay_s = retry_delay(exc, visit.attempt, rt.policy)
        if delay_s is None:
            store.record_url(failure_record(url, source.id, depth, exc, attempts=attempts))
            return Result("failed", error=exc)
        store.record_url(failure_record(url, source.id, depth, exc, attempts=attempts, waiting=True))
        return Result("retry", countdown=delay_s, error=exc)
    return _handle_page(rt, visit, source, scope, result, previous, redelivered=redelivered)


def _not_yet_visited(known: UrlState | None) -> bool:
    """A URL a redelivered visit sends (or follows) again although Redis says it was claimed:
    the store has not seen it, or has it only as queued (its claim may have died with the
    earlier delivery, before the URL was recorded or its message sent)."""
    return known is None or known.status == UrlStatus.QUEUED


def _redirect_claim(rt: Runtime, visit: Visit, *, redelivered: bool) -> Callable[[str], bool]:
    """Who may follow a redirect: a re-visited list page claims its target for the run (the
    target was visited by an earlier run), any other page claims it for good.

    A redelivered or retried visit also follows a target it finds claimed but the store has not
    seen, or has only as queued: an earlier delivery of this very visit may have claimed it and
    died (or lost the store) before storing it (a fetch too many at worst)."""
    state = rt.state
    claim: Callable[[str], bool]
    if visit.revisit and visit.run is not None:
        run = visit.run
        claim = lambda target: state.claim_for_run(visit.source_id, run, [target])[0]  # noqa: E731
    else:
        claim = state.claim
    if not redelivered:
        return claim

    def reclaim(target: str) -> bool:
        if claim(target):
            return True
        return _not_yet_visited(rt.store.get_url(target))

    return reclaim


def _handle_page(
    rt: Runtime,
    visit: Visit,
    source: Source,
    scope: Scope,
    result: FetchResult,
    previous: UrlState | None,
    *,
    redelivered: bool,
) -> Result:
    store, url, depth, attempts = rt.store, visit.url, visit.depth, visit.attempt + 1
    verdict = scope.judge(url, depth)
    if result.not_modified or result.is_redirect:
        answered = visit_state(
            url, source, depth, result, previous, kind=verdict.kind, attempts=attempts, now=utcnow()
        )
        store.record_url(answered)
        return Result("not_modified" if result.not_modified else "redirected")
    job = page_job(
        url,
        result,
        kind=verdict.kind,
        source=source,
        depth=depth,
        max_depth=scope.max_depth,
        max_url_length=rt.limits.max_url_length,
        time_limit=rt.settings.extract_timeout,
    )
    outcome = process_page(job)
    queued = _queue_links(rt, visit, source, scope, outcome.links, redelivered=redelivered)
    page_state = visit_state(
        url,
        source,
        depth,
        result,
        previous,
        kind=verdict.kind,
        outcome=outcome,
        attempts=attempts,
        now=job.fetched_at,
    )
    if outcome.document is not None:
        # One story, one document: the store decides exact and near copies against every
        # earlier document (the LSH index is in PostgreSQL, shared by all workers), and records
        # the URL's state (``duplicate`` for a copy) in the same transaction.
        fingerprint = outcome.fingerprint or Fingerprint.of(outcome.document.text)
        store.add_stories(
            [(outcome.document, fingerprint)],
            threshold=rt.settings.near_dup_threshold,
            keep_text=rt.settings.keep_duplicate_text,
            states=[page_state],
        )
    else:
        store.record_url(page_state)
    return Result(page_state.status.value, queued=queued)


def _queue_links(
    rt: Runtime, visit: Visit, source: Source, scope: Scope, links: list[str], *, redelivered: bool
) -> list[Visit]:
    """Claim and queue the links worth following; returns the visits queued."""
    depth = visit.depth + 1
    first: list[str] = []  # articles (and pages of pattern-less sources): visited once, ever
    per_run: list[str] = []  # list and start pages of a run: re-visited by every run
    for link in links:
        verdict = scope.judge(link, depth)
        if not verdict.follow:
            continue
        if visit.run is not None and (verdict.kind is PageKind.LIST or link in scope.start_urls):
            per_run.append(link)
        else:
            first.append(link)
    state, now = rt.state, utcnow()
    claimed_first = state.claim_many(first)
    claimed_per_run = (
        state.claim_for_run(source.id, visit.run, per_run) if visit.run is not None and per_run else []
    )
    unsent: set[str] = set()
    if redelivered:
        # An earlier delivery of this very visit may have claimed links and died (or lost the
        # store) before their messages were sent: a claimed link the store has not seen, or has
        # only as queued, is sent again (a message too many costs a skipped task).
        taken = [link for link, ok in zip(first, claimed_first, strict=True) if not ok]
        taken += [link for link, ok in zip(per_run, claimed_per_run, strict=True) if not ok]
        known_states = rt.store.get_urls(taken)
        unsent = {link for link in taken if _not_yet_visited(known_states.get(link))}
    queued = [
        Visit(link, source.id, depth, run=visit.run)
        for link, ok in zip(first, claimed_first, strict=True)
        if ok or link in unsent
    ]
    if visit.run is not None and per_run:
        fresh = [link for link, ok in zip(per_run, claimed_per_run, strict=True) if ok or link in unsent]
        # A list page seen before is re-visited when its own next visit has come, not whenever
        # a page links to it. Asked once per list page and run: later links find it claimed.
        known = rt.store.get_urls(fresh)
        queued += [
            Visit(link, source.id, depth, run=visit.run, revisit=True)
            for link in fresh
            if is_due(known.get(link), now)
        ]
    # The database learns of every URL before the broker does (insert-if-absent: a known URL
    # keeps its state): a message the broker loses is found QUEUED by the next run and re-sent.
    rt.store.add_queued(
        [UrlState(v.url, source.id, UrlStatus.QUEUED, v.depth, fetched_at=now) for v in queued]
    )
    for child in queued:
        send_fetch(
            child.url, child.source_id, child.depth, run=child.run, revisit=child.revisit, via=rt.sender
        )
    return queued


# -- the task shells ------------------------------------------------------------------------------


def _infra_countdown(retries: int, config: WorkerConfig) -> float:
    return bounded_countdown(min(60.0, 2.0 * 2**retries) * random.uniform(0.5, 1.0), config)


@app.task(name=FETCH_PAGE, bind=True, max_retries=None)
def fetch_page(
    self: Task,
    url: str,
    source_id: str,
    depth: int,
    attempt: int = 0,
    run: float | None = None,
    revisit: bool = False,
) -> dict[str, Any]:
    """Visit one page. Plain JSON arguments only; see the module docstring."""
    rt = runtime()
    visit = Visit(url, source_id, int(depth), int(attempt), run, bool(revisit))
    try:
        result = rt.run(visit_page(rt, visit, retried=bool(self.request.retries)))
    except INFRA_ERRORS as exc:
        log.warning("infrastructure failure on %s (%s); retrying", url, exc)
        raise self.retry(
            exc=exc,
            countdown=_infra_countdown(self.request.retries, rt.config),
            max_retries=INFRA_MAX_RETRIES,
        ) from exc
    except SoftTimeLimitExceeded:
        log.error("time limit reached on %s", url)
        cut = TimeLimitExceeded(f"the visit took longer than {rt.config.task_soft_time_limit:g} s")
        rt.store.record_url(failure_record(url, source_id, int(depth), cut, attempts=visit.attempt + 1))
        return {"status": "time_limit"}
    except Exception as exc:  # a bug must cost one URL, never a redelivery loop
        log.exception("unexpected error on %s", url)
        bug = InternalError(f"{type(exc).__name__}: {exc}")
        rt.store.record_url(failure_record(url, source_id, int(depth), bug, attempts=visit.attempt + 1))
        return {"status": "internal"}
    if result.status == "retry":
        assert result.error is not None
        log.info("retrying %s in %.1f s (%s)", url, result.countdown, result.error.reason)
        raise self.retry(
            args=(url, source_id, depth),
            kwargs={"attempt": visit.attempt + 1, "run": run, "revisit": revisit},
            countdown=bounded_countdown(result.countdown, rt.config),
            exc=result.error,
            max_retries=None,  # our own attempt count bounds it (RetryPolicy.max_retries)
        )
    if result.status == "deferred":
        send_fetch(
            url,
            source_id,
            depth,
            attempt=visit.attempt,
            run=run,
            revisit=revisit,
            countdown=result.countdown,
            via=rt.sender,
        )
    return result.summary()


@app.task(name=CRAWL_SOURCE, bind=True)
def crawl_source(self: Task, source_id: str) -> dict[str, Any]:
    """Start a run of a source: queue its start URLs (re-visited every run), re-try the URLs
    whose last visit failed transiently and resume those a page budget left over."""
    rt = runtime()
    try:
        # A retried or redelivered message continues the run it started, never a second one.
        run = rt.state.run_for_task(str(self.request.id or ""), time.time()) if self.request.id else None
        return start_run(rt, source_id, run=run)
    except INFRA_ERRORS as exc:
        raise self.retry(
            exc=exc,
            countdown=_infra_countdown(self.request.retries, rt.config),
            max_retries=INFRA_MAX_RETRIES,
        ) from exc


def _resend_lost(rt: Runtime, source: Source, waiting: list[UrlState], now: datetime) -> int:
    """Send again the queued URLs whose message the broker lost; returns how many.

    A URL recorded QUEUED was sent to the broker. Its message is lost when Redis restarted
    without persistence (then Redis has forgotten the URL's claim too, so claiming it succeeds
    again) or, rarely, when a worker was killed between taking the message and registering it
    as unacknowledged (then the claim remains, but the URL stays QUEUED long after any
    unacknowledged message would have been redelivered: older than the visibility timeout). A
    URL sent twice costs a skipped task at most: a visit first checks the store.
    """
    if not waiting:
        return 0
    stale_before = now - timedelta(seconds=visibility_timeout(rt.sender, rt.config))
    forgotten = rt.state.claim_many([s.url for s in waiting])
    resent = 0
    for state, unknown in zip(waiting, forgotten, strict=True):
        if unknown or state.fetched_at is None or state.fetched_at < stale_before:
            send_fetch(state.url, source.id, state.depth, via=rt.sender)
            resent += 1
    if resent:
        log.warning("%s: %d queued URL(s) had lost their message; sent again", source.id, resent)
    return resent


def start_run(rt: Runtime, source_id: str, *, run: float | None = None) -> dict[str, Any]:
    """Queue a run of ``source_id`` (idempotent for one ``run``: its claims are per run)."""
    source = rt.sources.get(source_id)
    if source is None:
        log.error("crawl_source: unknown source %r", source_id)
        return {"status": "unknown_source"}
    if not source.enabled:
        return {"status": "disabled"}
    run = time.time() if run is None else run
    # Read the store first: if it is down, nothing has been queued when the task retries.
    # Earlier transient failures get another chance, and pages left over by a page budget
    # are resumed.
    pending = list(
        itertools.islice(
            rt.store.iter_urls(status=UrlStatus.FAILED_TRANSIENT, source=source.id), MAX_RETRIES_PER_RUN
        )
    )
    waiting = list(
        itertools.islice(rt.store.iter_urls(status=UrlStatus.QUEUED, source=source.id), MAX_QUEUED_PER_RUN)
    )
    pending += [s for s in waiting if s.error_reason == OverBudget.reason]
    now = utcnow()
    # Pages whose next visit has come: list pages often, articles rarely (crawler.recrawl).
    pending += itertools.islice(rt.store.iter_due_urls(source.id, now), MAX_DUE_PER_RUN)
    rt.state.note_run(source.id, run)
    starts: list[str] = []
    for raw in source.start_urls:
        try:
            starts.append(canonicalize(raw, max_length=rt.limits.max_url_length))
        except InvalidURL as exc:
            rt.store.record_url(failure_record(raw, source.id, 0, exc))
    known = rt.store.get_urls(starts)
    starts = [url for url in starts if is_due(known.get(url), now)]
    queued = 0
    for url, ok in zip(starts, rt.state.claim_for_run(source.id, run, starts), strict=True):
        if ok:
            send_fetch(url, source.id, 0, run=run, revisit=True, via=rt.sender)
            queued += 1
    # Claimed for the run like list pages, so that a redelivered message does not queue them twice.
    pending = list({s.url: s for s in pending if s.url not in starts}.values())
    resumed = 0
    claimed = rt.state.claim_for_run(source.id, run, [s.url for s in pending])
    for state, ok in zip(pending, claimed, strict=True):
        if ok:
            send_fetch(state.url, source.id, state.depth, run=run, revisit=True, via=rt.sender)
            resumed += 1
    resumed += _resend_lost(rt, source, [s for s in waiting if s.error_reason != OverBudget.reason], now)
    log.info("run %.3f of %s: %d start URLs queued, %d earlier URLs resumed", run, source.id, queued, resumed)
    return {"status": "started", "run": run, "queued": queued, "resumed": resumed}
