"""The crawl as Celery tasks: thin shells over :func:`crawler.visit.run_visit`.

``crawler.fetch_page`` visits one page (its message is :class:`crawler.visit.Visit`): the same
routine as the embedded crawl, with the ports of a cluster plugged in (:class:`ClusterPorts`):

* the frontier claims URLs in Redis (one atomic ``SADD`` each: of two workers finding a link,
  exactly one queues it), records them ``queued`` in the database, then sends their messages;
* the host gate is an atomic Redis reservation of the next start and a request slot. A wait of
  up to ``throttle_max_sleep`` (0.1 s: the pool's slots are few, a sleeping one is lost to every
  other host) is slept; a longer one answers "later", and the task re-queues itself with a
  countdown, to come back at its turn of the host's virtual queue, instead of holding the
  worker. Right before sending, a last atomic check spaces the *actual* starts;
* the budget is a per-run counter in Redis, the sink the database, and extraction runs in this
  very process (the prefork pool is the process pool).

What stays here is Celery's own concern: a visit already done is skipped (a message delivered
twice does the work once), a page that keeps killing its worker is given up
(``worker_lost``), a transient failure is retried with ``self.retry`` and a countdown
(:func:`crawler.visit.retry_delay`, bounded below the visibility timeout), a deferred visit is
sent again, and failures of our own infrastructure (Redis, the database) are retried without
touching the URL.

``crawler.crawl_source(source_id)`` starts a run of a source (beat sends it on the source's
schedule) with the embedded crawl's selection (:func:`crawler.recrawl.plan_run`): the start
URLs, always, then the known URLs due again, left over by a page budget, or whose last visit
failed transiently; a queued URL whose message the broker lost is sent again. List and start
pages are claimed per run; articles already seen are never queued again by a link, only by
their own next visit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import redis
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown
from celery.utils.log import get_task_logger

from crawler.archive import ArchiveWriter
from crawler.attachments import AttachmentFile
from crawler.dedup import Fingerprint
from crawler.document import Attachment, AttachmentLink, utcnow
from crawler.errors import (
    CrawlerError,
    HostBusy,
    InternalError,
    OverBudget,
    TimeLimitExceeded,
    UnknownSource,
    WorkerLost,
)
from crawler.fetch import FetchResult, make_client
from crawler.links import PageKind, Scope
from crawler.pipeline import (
    AttachmentJob,
    AttachmentOutcome,
    PageJob,
    PageOutcome,
    process_attachment,
    process_page,
)
from crawler.plans import PlanBook, host_of, write_plans
from crawler.records import failure_record
from crawler.recrawl import is_due, plan_run
from crawler.robots import RobotsCache
from crawler.sources import Source
from crawler.visit import (
    AttachmentVisit,
    Child,
    Turn,
    Visit,
    VisitPorts,
    VisitResult,
    already_done,
    run_attachment_visit,
    run_visit,
)
from settings import get_settings
from storage import StorageError, Store, UrlState, UrlStatus, open_store
from workers.app import (
    WorkerConfig,
    app,
    bounded_countdown,
    send_attachment,
    send_fetch,
    send_fetches,
    visibility_timeout,
)
from workers.routing import CRAWL_SOURCE, FETCH_ATTACHMENT, FETCH_PAGE
from workers.state import CrawlState, StartGrant, connect

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
        self.limits = self.settings.fetch_limits()
        # Every retry's countdown stays below the broker's visibility timeout.
        self.policy = self.settings.retry_policy(ceiling=self.config.max_countdown)
        self.politeness = self.settings.politeness()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._store: Store | None = None
        self._state: CrawlState | None = None
        self._robots: RobotsCache | None = None
        self._sources: Sources | None = None
        self._archive: ProcessArchive | None = None
        #: This process's extraction plans (None: switched off); shared with the other workers
        #: through the store: written every PLAN_WRITE_SECONDS (learned or retired plans at
        #: once), read again every ``plan_reload_seconds``.
        reload_after = self.settings.plan_reload_seconds
        self.plans = PlanBook(reload_after=reload_after) if self.settings.extraction_plans else None
        self._plans_written = time.monotonic()

    def write_plans(self, *, now: bool = False) -> None:
        """Write the plans' news to the store when due (or ``now``). A store that fails loses
        only counts and a plan, which is learned again: never the page's task."""
        book = self.plans
        if book is None or not (book.pending or book.urgent):
            return
        if not (now or book.urgent or time.monotonic() - self._plans_written >= PLAN_WRITE_SECONDS):
            return
        self._plans_written = time.monotonic()
        try:
            write_plans(self.store, book.take_writes())
        except StorageError as exc:
            log.warning("writing extraction plans failed: %s", exc)

    @staticmethod
    def now() -> datetime:
        """The clock of the records."""
        return utcnow()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client(self.limits, max_connections=20)
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
            self._robots = RobotsCache(
                self.client, self.limits.user_agent, shared=self.state.robots, policy=self.limits.network
            )
        return self._robots

    @property
    def archive(self) -> ProcessArchive | None:
        """This process's raw archive, or None when it is switched off."""
        if self._archive is None and self.settings.archive_enabled:
            writer = self.settings.archive_writer()
            self._archive = ProcessArchive(writer) if writer is not None else None
        return self._archive

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
        if self._store is not None:
            self.write_plans(now=True)
        if self._client is not None and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.run_until_complete(self._client.aclose())
            except Exception:  # closing on the way out: nothing useful to do about it
                log.debug("closing the HTTP client failed", exc_info=True)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()
        if self._store is not None:
            self._store.close()
        if self._archive is not None:
            self._archive.writer.close()
        if self._state is not None:
            self._state.client.close()
        self._loop = self._client = self._store = self._state = self._robots = self._archive = None


#: Seconds between a worker's writes of its plans' counts.
PLAN_WRITE_SECONDS = 10.0

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


# -- the cluster's ports -----------------------------------------------------------------------


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


async def take_turn(state: CrawlState, host: str, delay: float, grant: StartGrant) -> None:
    """Start a request at a granted turn: sleep until it and record the start, unless the grant
    recorded it already (no wait was needed)."""
    if grant.started:
        return
    if grant.wait > 0:
        await asyncio.sleep(grant.wait)
    await start_request(state, host, delay)


def _not_yet_visited(known: UrlState | None) -> bool:
    """A URL a redelivered visit sends (or follows) again although Redis says it was claimed:
    the store has not seen it, or has it only as queued (its claim may have died with the
    earlier delivery, before the URL was recorded or its message sent)."""
    return known is None or known.status == UrlStatus.QUEUED


class ClusterPorts:
    """The ports of :func:`crawler.visit.run_visit` for one visit on a worker: Redis for claims,
    host turns and budgets, the database for records, extraction in this process.

    ``redelivered``: this message may be a second delivery of one that did not finish (its
    worker died, or an infrastructure failure cut it short), which may have claimed links or a
    redirect target and died before they were recorded or sent.
    """

    def __init__(self, rt: Runtime, *, redelivered: bool) -> None:
        self.rt = rt
        self.redelivered = redelivered

    # Frontier

    def redirect_claim(self, visit: Visit) -> Callable[[str], bool]:
        """A re-visited list page claims its redirect target for the run (the target was visited
        by an earlier run), any other page claims it for good. A redelivered visit also follows
        a target it finds claimed but the store has not seen, or has only as queued (a fetch
        too many at worst)."""
        state = self.rt.state
        claim: Callable[[str], bool]
        if visit.revisit and visit.run is not None:
            run = visit.run
            claim = lambda target: state.claim_for_run(visit.source_id, run, [target])[0]  # noqa: E731
        else:
            claim = state.claim
        if not self.redelivered:
            return claim

        def reclaim(target: str) -> bool:
            return claim(target) or _not_yet_visited(self.rt.store.get_url(target))

        return reclaim

    async def follow(self, visit: Visit, children: list[Child]) -> tuple[int, int]:
        """Claim and queue the links worth following. Articles (and pages of pattern-less
        sources) are claimed once, ever; list and start pages once per run, and queued only
        when due (a list page seen before is re-visited when its own next visit has come)."""
        rt, state, source_id = self.rt, self.rt.state, visit.source_id
        run = visit.run
        first = [c.url for c in children if run is None or not c.per_run]
        per_run = [c.url for c in children if run is not None and c.per_run]
        depth = {c.url: c.depth for c in children}
        # One round trip for all of them (a page's links are claimed together).
        claimed_first, claimed_per_run = state.claim_links(first, source_id, run, per_run)
        unsent: set[str] = set()
        if self.redelivered:
            # An earlier delivery of this very visit may have claimed links and died before
            # their messages were sent: a claimed link the store has not seen, or has only as
            # queued, is sent again (a message too many costs a skipped task).
            taken = [link for link, ok in zip(first, claimed_first, strict=True) if not ok]
            taken += [link for link, ok in zip(per_run, claimed_per_run, strict=True) if not ok]
            known_states = rt.store.get_urls(taken)
            unsent = {link for link in taken if _not_yet_visited(known_states.get(link))}
        queued = [
            Visit(link, source_id, depth[link], run=visit.run)
            for link, ok in zip(first, claimed_first, strict=True)
            if ok or link in unsent
        ]
        not_due = 0
        if per_run:
            fresh = [link for link, ok in zip(per_run, claimed_per_run, strict=True) if ok or link in unsent]
            known = rt.store.get_urls(fresh)
            now = rt.now()
            for link in fresh:
                if is_due(known.get(link), now):
                    queued.append(Visit(link, source_id, depth[link], run=visit.run, revisit=True))
                else:
                    not_due += 1
        # The database learns of every URL before the broker does (insert-if-absent: a known
        # URL keeps its state): a message the broker loses is found QUEUED by the next run.
        now = rt.now()
        try:
            recorded = rt.store.add_queued(
                [UrlState(v.url, source_id, UrlStatus.QUEUED, v.depth, fetched_at=now) for v in queued]
            )
        except Exception:
            # Not recorded: give back the claims this call won, or a retry that finds its page
            # done meanwhile (another delivery stored it) would leave its links claimed and
            # unknown for good. A worker that dies here is covered by its redelivery instead.
            won_first = [link for link, ok in zip(first, claimed_first, strict=True) if ok]
            won_per_run = [link for link, ok in zip(per_run, claimed_per_run, strict=True) if ok]
            try:
                state.release_links(won_first, source_id, run, won_per_run)
            except Exception as exc:  # Redis down too: the redelivery/retry checks remain
                log.warning("releasing link claims of %s failed: %s", visit.url, exc)
            raise
        # A first visit of a URL this call gave its first record needs no read of it (the
        # record says nothing a missing one would not); a URL the store knew (Redis forgot
        # its claim, or an earlier delivery queued it) is read as always.
        sent = [replace(v, fresh=True) if not v.revisit and v.url in recorded else v for v in queued]
        send_fetches(sent, via=rt.sender)
        return len(queued), not_due

    async def attachments(self, visit: Visit, links: list[AttachmentLink]) -> None:
        # The links were recorded with the page (page()); a message the broker loses is sent
        # again by the source's next run (Store.pending_attachments).
        for link in links:
            send_attachment(AttachmentVisit(link.url, visit.source_id, link.type), via=self.rt.sender)

    # HostGate

    async def acquire(self, host: str, *, delay: float, concurrency: int, holder: str) -> Turn:
        state = self.rt.state
        grant = state.try_start(
            host,
            delay=delay,
            max_wait=self.rt.config.throttle_max_sleep,
            cap=concurrency,
            # The slot is held for the fetch alone, which the page deadline bounds: a killed
            # worker's slot comes back after that, not after the task's time limit.
            lease=self.rt.limits.page_deadline + delay + SLOT_LEASE_GRACE,
            holder=holder,
            # A grant with no wait records the actual start too: no separate go() round trip.
            go=True,
        )
        if not grant.granted:
            # Not our turn for a while: free the worker and come back about when it will be
            # (the grant's wait is a turn of the host's virtual queue; a little early is fine,
            # the task then sleeps the rest). A full host: try again after about a delay.
            if grant.why == "wait":
                return Turn(later=max(0.0, grant.wait - DEFER_EARLY))
            return Turn(later=grant.wait * random.uniform(0.5, 1.5))
        try:
            await take_turn(state, host, delay, grant)
        except BaseException:
            state.release(host, grant.token)
            raise
        return Turn(release=lambda: state.release(host, grant.token))

    async def hop(self, host: str, *, delay: float) -> None:
        await take_turn(self.rt.state, host, delay, self.rt.state.reserve(host, delay=delay, go=True))

    # Budget

    def spent(self, visit: Visit, source: Source) -> bool:
        if source.max_pages is None or visit.run is None:
            return False
        return self.rt.state.budget_used(source.id, visit.run) >= source.max_pages

    def take(self, visit: Visit, source: Source) -> bool:
        if source.max_pages is None or visit.run is None:
            return True
        return self.rt.state.take_budget(source.id, visit.run, source.max_pages)

    # Sink

    async def record(self, state: UrlState) -> None:
        self.rt.store.record_url(state)

    async def page(self, state: UrlState, outcome: PageOutcome) -> None:
        # One story, one document: the store decides exact and near copies against every
        # earlier document (the LSH index is in the database, shared by all workers), and
        # records the URL's state (``duplicate`` for a copy) in the same transaction.
        assert outcome.document is not None
        fingerprint = outcome.fingerprint or Fingerprint.of(outcome.document.text)
        self.rt.store.add_stories(
            [(outcome.document, fingerprint)],
            threshold=self.rt.settings.near_dup_threshold,
            keep_text=self.rt.settings.keep_duplicate_text,
            states=[state],
        )
        if outcome.attachments:
            self.rt.store.link_attachments(state.url, outcome.attachments)

    async def attachment_known(self, url: str) -> bool:
        return self.rt.store.attachment_sha256(url) is not None

    async def attachment(self, record: Attachment) -> None:
        self.rt.store.add_attachment(record)

    async def attachment_failed(self, url: str, error: CrawlerError) -> None:
        self.rt.store.resolve_attachment(url, error_reason=error.reason)

    # Pages

    async def process(self, job: PageJob) -> PageOutcome:
        rt, book = self.rt, self.rt.plans
        site = (job.source or "", host_of(job.final_url))
        if book is not None and job.kind is not PageKind.LIST:
            if book.wants_load(*site):
                try:
                    book.install(*site, rt.store.load_plans(*site))
                except StorageError as exc:  # the page goes on with the plans known so far
                    log.warning("reading extraction plans failed: %s", exc)
            job.plans = book.orders(*site)
        outcome = process_page(job)
        if book is not None and outcome.plan_report is not None:
            book.record(*site, outcome.plan_report)
            outcome.plan_report = None
            rt.write_plans()
        return outcome

    async def process_attachment(self, job: AttachmentJob) -> AttachmentOutcome:
        return process_attachment(job)


class ProcessArchive:
    """The raw archive port of a worker process: one writer per process (its file names carry
    the process id, so workers never write into one file), written in place."""

    def __init__(self, writer: ArchiveWriter) -> None:
        self.writer = writer

    async def page(self, result: FetchResult, *, kind: str, source: str) -> None:
        self.writer.write_fetch(result, kind=kind, source=source)

    async def attachment(self, file: AttachmentFile, *, source: str) -> None:
        self.writer.write_attachment(file, source=source)


def visit_ports(rt: Runtime, *, redelivered: bool) -> VisitPorts:
    ports = ClusterPorts(rt, redelivered=redelivered)
    return VisitPorts(
        client=rt.client,
        limits=rt.limits,
        robots=rt.robots,
        frontier=ports,
        gate=ports,
        budget=ports,
        sink=ports,
        pages=ports,
        politeness=rt.politeness,
        retry=rt.policy,
        extract_timeout=rt.settings.extract_timeout,
        max_links=rt.settings.max_links_per_page,
        archive=rt.archive,
        now=rt.now,
    )


async def visit_page(
    rt: Runtime, visit: Visit, *, retried: bool = False, redelivered: bool = False
) -> VisitResult:
    """Visit one page (see the module docstring). Raises only for infrastructure failures.

    ``retried``: this message is a retry of one that did not finish (an infrastructure failure
    may have cut it short after its links were claimed and before they were queued).
    ``redelivered``: the broker delivers this message again (kombu marks a message it restores
    after its worker died, or after the visibility timeout): its earlier deliveries never
    finished. Only such deliveries are counted in Redis (the poison guard): a first delivery
    that dies is the one count its redelivery adds, so the usual first delivery that finishes
    costs no round trip for it."""
    state, store = rt.state, rt.store
    source = rt.sources.get(visit.source_id)
    if source is None:
        unknown = UnknownSource(f"no source {visit.source_id!r} in the seeds or in Redis")
        store.record_url(failure_record(visit.url, visit.source_id, visit.depth, unknown))
        return VisitResult("unknown_source", error=unknown)
    # A fresh message's URL has only the queued record its sender made (see Visit.fresh);
    # a delivery again or a retry may follow a delivery that stored more.
    previous = None if visit.fresh and not (redelivered or retried) else store.get_url(visit.url)
    if already_done(previous, visit.since):
        return VisitResult("skipped")
    deliveries = (state.start_delivery(visit.url) + 1) if redelivered else 1
    try:
        if deliveries > rt.config.max_deliveries:
            log.error("giving up %s: %d deliveries never finished", visit.url, deliveries - 1)
            lost = WorkerLost(f"the worker died {deliveries - 1} times on this page")
            store.record_url(
                failure_record(visit.url, visit.source_id, visit.depth, lost, attempts=visit.attempt + 1)
            )
            return VisitResult("worker_lost", error=lost)
        ports = visit_ports(rt, redelivered=deliveries > 1 or retried)
        return await run_visit(visit, source, rt.sources.scope(source), previous, ports)
    finally:
        if redelivered:
            state.finish_delivery(visit.url)


async def download_attachment(rt: Runtime, visit: AttachmentVisit) -> VisitResult:
    """Download one attachment (see :func:`crawler.visit.run_attachment_visit`). Raises only for
    infrastructure failures."""
    source = rt.sources.get(visit.source_id)
    if source is None:
        unknown = UnknownSource(f"no source {visit.source_id!r} in the seeds or in Redis")
        rt.store.resolve_attachment(visit.url, error_reason=unknown.reason)
        return VisitResult("unknown_source", error=unknown, attachment=True)
    ports = visit_ports(rt, redelivered=False)
    return await run_attachment_visit(visit, source, rt.sources.scope(source), ports)


# -- the task shells ------------------------------------------------------------------------------


def _infra_countdown(retries: int, config: WorkerConfig) -> float:
    return bounded_countdown(min(60.0, 2.0 * 2**retries) * random.uniform(0.5, 1.0), config)


def _shell(
    task: Task,
    rt: Runtime,
    message: Visit | AttachmentVisit,
    work: Coroutine[Any, Any, VisitResult],
    *,
    failed: Callable[[CrawlerError], None],
    send: Callable[..., None],
) -> dict[str, Any]:
    """What every visit task does around its work: an infrastructure failure is retried without
    touching the URL; a time limit or a bug is recorded (``failed``) and costs this one message;
    a transient failure is retried with the visit's own countdown and attempt count; a visit
    whose host is busy is sent again (``send``) to come back at its turn."""
    try:
        # One database connection for the whole visit (see Store.pinned).
        with rt.store.pinned():
            result = rt.run(work)
    except INFRA_ERRORS as exc:
        log.warning("infrastructure failure on %s (%s); retrying", message.url, exc)
        raise task.retry(
            exc=exc,
            countdown=_infra_countdown(task.request.retries, rt.config),
            max_retries=INFRA_MAX_RETRIES,
        ) from exc
    except SoftTimeLimitExceeded:
        log.error("time limit reached on %s", message.url)
        failed(TimeLimitExceeded(f"the visit took longer than {rt.config.task_soft_time_limit:g} s"))
        return {"status": "time_limit"}
    except Exception as exc:  # a bug must cost one URL, never a redelivery loop
        log.exception("unexpected error on %s", message.url)
        failed(InternalError(f"{type(exc).__name__}: {exc}"))
        return {"status": "internal"}
    if result.status == "retry":
        assert result.error is not None
        log.info("retrying %s in %.1f s (%s)", message.url, result.countdown, result.error.reason)
        retry = message.next_attempt()
        raise task.retry(
            args=retry.args(),
            kwargs=retry.kwargs(),
            countdown=bounded_countdown(result.countdown, rt.config),
            exc=result.error,
            max_retries=None,  # our own attempt count bounds it (RetryPolicy.max_retries)
        )
    if result.status == "deferred":
        send(message, countdown=result.countdown, via=rt.sender)
    return result.summary()


@app.task(name=FETCH_PAGE, bind=True, max_retries=None)
def fetch_page(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Visit one page. The message is :class:`crawler.visit.Visit` (plain JSON values)."""
    rt = runtime()
    visit = Visit.from_message(args, kwargs)

    def failed(error: CrawlerError) -> None:
        rt.store.record_url(
            failure_record(visit.url, visit.source_id, visit.depth, error, attempts=visit.attempt + 1)
        )

    retried = bool(self.request.retries) or visit.recovering
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    work = visit_page(rt, visit, retried=retried, redelivered=redelivered)
    # A retried visit that is put off (its host is busy) is sent as a new message: it keeps the
    # mark, or the links an earlier delivery claimed and never queued would be lost.
    carried = replace(visit, recovering=True) if retried else visit
    return _shell(self, rt, carried, work, failed=failed, send=send_fetch)


@app.task(name=FETCH_ATTACHMENT, bind=True, max_retries=None)
def fetch_attachment(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Download one attachment, find its text, store it once per sha256. The message is
    :class:`crawler.visit.AttachmentVisit`; retried like a page on transient failures."""
    rt = runtime()
    visit = AttachmentVisit.from_message(args, kwargs)

    def failed(error: CrawlerError) -> None:
        rt.store.resolve_attachment(visit.url, error_reason=error.reason)

    return _shell(self, rt, visit, download_attachment(rt, visit), failed=failed, send=send_attachment)


@app.task(name=CRAWL_SOURCE, bind=True)
def crawl_source(self: Task, source_id: str) -> dict[str, Any]:
    """Start a run of a source: queue its start URLs (visited by every run), the known URLs due
    again, left over by a page budget or failed transiently, and those the broker lost."""
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
    lost = [
        Visit(state.url, source.id, state.depth)
        for state, unknown in zip(waiting, forgotten, strict=True)
        if unknown or state.fetched_at is None or state.fetched_at < stale_before
    ]
    send_fetches(lost, via=rt.sender)
    resent = len(lost)
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
    store, now = rt.store, rt.now()
    # Read the store first: if it is down, nothing has been queued when the task retries. The
    # store's indexed queries give the candidates; plan_run applies the embedded crawl's rule.
    failed = itertools.islice(
        store.iter_urls(status=UrlStatus.FAILED_TRANSIENT, source=source.id), MAX_RETRIES_PER_RUN
    )
    waiting = list(
        itertools.islice(store.iter_urls(status=UrlStatus.QUEUED, source=source.id), MAX_QUEUED_PER_RUN)
    )
    due = itertools.islice(store.iter_due_urls(source.id, now), MAX_DUE_PER_RUN)
    # A queued URL may still have its message in the broker: only those a page budget left over
    # are resumed here; the others are sent again when the broker lost them (_resend_lost).
    over_budget = [s for s in waiting if s.error_reason == OverBudget.reason]
    plan = plan_run(
        rt.sources.scope(source),
        itertools.chain(failed, due, over_budget),
        now,
        retry_failed=True,
        max_url_length=rt.limits.max_url_length,
    )
    rt.state.note_run(source.id, run)
    for raw, exc in plan.invalid:
        store.record_url(failure_record(raw, source.id, 0, exc))
    starting = [
        Visit(url, source.id, 0, run=run, revisit=True)
        for url, ok in zip(plan.starts, rt.state.claim_for_run(source.id, run, plan.starts), strict=True)
        if ok
    ]
    send_fetches(starting, via=rt.sender)
    queued = len(starting)
    # Claimed for the run like list pages, so that a redelivered message does not queue them twice.
    claimed = rt.state.claim_for_run(source.id, run, [s.url for s in plan.resumed])
    resuming = [
        Visit(state.url, source.id, state.depth, run=run, revisit=True)
        for state, ok in zip(plan.resumed, claimed, strict=True)
        if ok
    ]
    send_fetches(resuming, via=rt.sender)
    resumed = len(resuming)
    starts = set(plan.starts)
    lost = [s for s in waiting if s.error_reason != OverBudget.reason and s.url not in starts]
    resumed += _resend_lost(rt, source, lost, now)
    # Attachments never downloaded (a lost message, or a run cut short): sent again; one that is
    # in flight meanwhile costs a skipped task (the store says it is known).
    for url, kind in store.pending_attachments(source.id):
        send_attachment(AttachmentVisit(url, source.id, kind), via=rt.sender)
    log.info("run %.3f of %s: %d start URLs queued, %d earlier URLs resumed", run, source.id, queued, resumed)
    return {"status": "started", "run": run, "queued": queued, "resumed": resumed}
