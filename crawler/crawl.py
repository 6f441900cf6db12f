"""The embedded crawl: one process, async I/O for fetching, a process pool for extraction.

Shape of the run::

    store ──> frontier (depth-ordered) ──> N visits (crawler.visit.run_visit) ──> process pool
      ^          ^  durable: a URL is recorded `queued`       │ robots, host turn, fetch
      │          │  before it is fetched                      │
      └─ writer ─┴──────────── links in scope, records, documents

Every visit is :func:`crawler.visit.run_visit`, the routine the Celery workers run too; this
module plugs in the in-process ports: a frontier with claims (``seen``) and a write-through
view of the store's URL states, a host throttle, a page budget, a process pool, and one writer
thread that stores records and documents in batches (group commit: whatever arrived while the
previous batch was written).

The frontier is durable. A URL is recorded ``queued`` before it is fetched, and a page's state
is written only after the ``queued`` records of its links, so a crawl stopped at any moment
(Ctrl-C, SIGTERM, ``kill -9``) loses nothing: the same command continues from the store, and
only the pages in flight are fetched again. On :meth:`EmbeddedCrawl.stop` (the CLI's SIGINT and
SIGTERM handler) the crawl takes no new page, gives the pages in flight a few seconds, hands
back the rest (they stay ``queued``) and writes out what it has.

Transient failures are retried within the run, with the workers' policy
(:func:`crawler.visit.retry_delay`: backoff with full jitter, Retry-After as a floor). A crawl
continues the store's earlier crawls of its sources (:func:`crawler.recrawl.plan_run`): the
start URLs always, then the known URLs left queued or due again; links to known pages that are
not due are skipped, and re-visits are conditional requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from crawler.archive import ArchiveWriter
from crawler.attachments import AttachmentFile, sniff_type
from crawler.dedup import Fingerprint
from crawler.document import Attachment, AttachmentLink, Document, utcnow
from crawler.errors import CrawlerError, ExtractionCrashed, ExtractionError, ExtractionTimeout, InternalError
from crawler.fetch import FetchLimits, FetchResult, make_client
from crawler.frontier import DEFAULT_IN_MEMORY, FrontierItem, SpillingQueue, UrlSet
from crawler.links import PageKind, Scope
from crawler.pipeline import (
    AttachmentJob,
    AttachmentOutcome,
    PageJob,
    PageOutcome,
    process_attachment,
    process_page,
)
from crawler.plans import PlanBook, PlanStore, host_of, write_plans
from crawler.politeness import HostThrottle
from crawler.records import UrlState, UrlStatus, failure_record
from crawler.recrawl import is_due, plan_run
from crawler.robots import RobotsCache
from crawler.sources import Source
from crawler.visit import (
    AttachmentVisit,
    Child,
    Politeness,
    RetryPolicy,
    Turn,
    Visit,
    VisitPorts,
    VisitResult,
    already_done,
    run_attachment_visit,
    run_visit,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: At most this many records and documents are written in one transaction.
_WRITE_BATCH = 500
#: Documents waiting for the writer: bounded, so that a writer slower than extraction (its
#: near-duplicate checks grow with the store) slows the crawl instead of growing its memory.
_MAX_WAITING_DOCUMENTS = 128
_WRITE_BATCH_DOCUMENTS = _MAX_WAITING_DOCUMENTS // 2  # one batch is stored while the next fills
_EXTRACT_GRACE = 10.0
#: Pages per extraction process in the pool at once (one running, one waiting to start).
_POOL_SLOTS_PER_PROCESS = 2
#: States a run reads again after recording them: a visit retried within the run, or handed
#: back queued, starts from its last state.
_REREAD = frozenset({UrlStatus.QUEUED, UrlStatus.FAILED_TRANSIENT})
#: Plan reports after which the plans' counts are written (learned and retired plans: at once).
_PLAN_WRITE_EVERY = 200
#: Seconds the pages in flight get to finish after a stop before they are handed back.
STOP_GRACE = 5.0


class DocumentStore(PlanStore, Protocol):
    """What the crawl needs of a store (see :mod:`storage`), its extraction plans included."""

    def add_stories(
        self,
        items: Sequence[tuple[Document, Fingerprint]],
        *,
        threshold: float,
        keep_text: bool,
        states: Sequence[UrlState] = (),
    ) -> Sequence[Any]: ...

    def record_urls(self, states: Sequence[UrlState]) -> None: ...

    def add_queued(self, states: Sequence[UrlState]) -> object: ...  # what it returns is not used here

    def iter_urls(self, *, source: str | None = None) -> Iterator[UrlState]: ...

    def link_attachments(self, document_url: str, links: Sequence[AttachmentLink]) -> None: ...

    def add_attachment(self, attachment: Attachment) -> bool: ...

    def resolve_attachment(
        self, url: str, *, sha256: str | None = None, error_reason: str | None = None
    ) -> None: ...

    def attachment_sha256(self, url: str) -> str | None: ...

    def pending_attachments(self, source: str) -> list[tuple[str, str | None]]: ...


@dataclass(slots=True)
class CrawlOptions:
    """How one embedded crawl runs. Built by :meth:`settings.Settings.crawl_options`: the values
    come from the settings, a command line's flags override single ones."""

    concurrency: int
    politeness: Politeness
    extract_workers: int  # 0: one per core
    extract_timeout: float
    near_dup_threshold: float
    keep_duplicate_text: bool
    limits: FetchLimits
    retry: RetryPolicy
    #: Links kept per page (the rest are counted as dropped).
    max_links: int
    #: The raw archive (WARC), or None when it is switched off.
    archive: ArchiveWriter | None
    #: Learn and use per-template extraction plans (crawler.plans).
    extraction_plans: bool = True
    max_pages: int | None = None
    max_depth: int | None = None
    revisit_all: bool = False  # visit every known URL now, whatever its next-visit time
    retry_failed: bool = False  # visit again the URLs whose last visit failed transiently
    #: Visits waiting on the frontier kept in memory; the rest wait in a file (crawler.frontier).
    frontier_in_memory: int = DEFAULT_IN_MEMORY


@dataclass(slots=True)
class CrawlStats:
    pages_fetched: int = 0
    documents_stored: int = 0
    duplicates: int = 0  # copies recorded: pages that copy a stored story, documents a better copy replaced
    unchanged: int = 0  # re-crawled pages whose text this URL had already stored
    versions: int = 0  # re-crawled articles that changed: stored as a new version
    not_modified: int = 0  # re-visits answered 304
    resumed: int = 0  # known URLs queued at the start (left queued, due, or retried)
    redirects_skipped: int = 0
    retries: int = 0  # transient failures tried again within the run
    starts_answered: int = 0  # start URLs the server answered (a page, a 304 or a redirect)
    bytes_fetched: int = 0
    links_dropped: int = 0  # links past the per-page cap, not followed
    attachments: int = 0  # attachment files downloaded (their text extracted when PDF or DOCX)
    damaged: int = 0  # pages stored without the replacement runs they had (see errors.DamagedText)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # links not followed, by reason
    queued: int = 0
    #: Stopped before the end (SIGINT, SIGTERM): ``waiting`` URLs are left queued in the store.
    interrupted: bool = False
    waiting: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def pages_per_second(self) -> float:
        """Pages read per second, 304 answers included (a re-crawl's pages are mostly 304s)."""
        visited = self.pages_fetched + self.not_modified
        return visited / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def count(self, result: VisitResult) -> None:
        """Add one visit's result."""
        status = result.status
        if result.attachment:
            if status == "fetched":
                self.attachments += 1
            elif status == "retry":
                self.retries += 1
            elif result.error is not None:
                self.errors[result.error.reason] += 1
            return
        if status in ("fetched", "rejected"):
            self.pages_fetched += 1
            self.bytes_fetched += result.bytes
            if result.outcome is not None:
                self.links_dropped += result.outcome.links_dropped
                self.damaged += result.outcome.damaged
                if result.outcome.error_reason:
                    self.errors[result.outcome.error_reason] += 1
        elif status == "not_modified":
            self.not_modified += 1
        elif status == "redirected":
            self.redirects_skipped += 1
        elif status == "retry":
            self.retries += 1
        elif status == "over_budget":
            self.skipped["page_budget"] += 1
        elif result.error is not None:
            self.errors[result.error.reason] += 1
        self.skipped.update(result.skipped)


def _ignore_stop_signals() -> None:
    """In an extraction process: leave Ctrl-C, a closed terminal and SIGTERM to the crawl. They
    reach the whole process group, and a pool whose processes die of them breaks under the pages
    in flight; the crawl winds the pool down itself (its processes exit when the crawl does)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def _pool_context() -> multiprocessing.context.BaseContext:
    # forkserver: workers fork from a clean process that has imported the pipeline once,
    # never from our threaded event-loop process.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["crawler.pipeline"])
        return ctx
    return multiprocessing.get_context("spawn")


# What the writer is given, as (kind, URL state or None, value): "queued" a URL to record (value:
# the frontier item its record gates), "state" a URL's state, "page" a page's state and outcome,
# "release" a frontier item to let go once the batch is written (an attachment download, whose
# link the page's batch records), "attachment" a downloaded file, "attachment_failed" (url, why),
# "plans" the extraction plans' writes (crawler.plans.PlanBook.take_writes).
_Write = tuple[str, UrlState | None, Any]


class _ThreadedArchive:
    """The raw archive for the embedded crawl: writes (gzip, file appends) in a thread of their
    own, off the event loop."""

    def __init__(self, writer: ArchiveWriter) -> None:
        self.writer = writer
        self.thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="archive-writer")

    async def page(self, result: FetchResult, *, kind: str, source: str) -> None:
        loop = asyncio.get_running_loop()
        write = functools.partial(self.writer.write_fetch, result, kind=kind, source=source)
        await loop.run_in_executor(self.thread, write)

    async def attachment(self, file: AttachmentFile, *, source: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self.thread, functools.partial(self.writer.write_attachment, file, source=source)
        )

    def close(self) -> None:
        self.thread.shutdown(wait=True)
        self.writer.close()


class EmbeddedCrawl:
    def __init__(self, sources: Sequence[Source], store: DocumentStore, options: CrawlOptions) -> None:
        if not sources:
            raise ValueError("nothing to crawl: no sources")
        self.sources = {s.id: s for s in sources}
        self.scopes = {s.id: Scope(s, max_depth=options.max_depth) for s in sources}
        self.store = store
        self.options = options
        self.stats = CrawlStats()
        #: The run's name (epoch seconds): start URLs and known pages are re-visited for it.
        self.run_id = time.time()
        #: Every URL this run has claimed (compact: a crawl's memory must not grow per URL).
        self.seen = UrlSet()
        #: What the store holds about the sources' URLs that this run may still read: loaded
        #: when the run starts, kept up to date with every record this crawl writes, and let go
        #: of once a URL is done for the run (see _remember).
        self.known: dict[str, UrlState] = {}
        # Bounded in memory: a frontier can hold most of a site's URLs at once (a list page of
        # thousands of articles, or the URLs an interrupted crawl left queued, all resumed).
        self._ready = SpillingQueue(options.frontier_in_memory)
        self._seq = itertools.count()
        #: Visits taken on and not finished (waiting to be recorded, queued, in flight, or
        #: waiting for a retry); the crawl is over when none is left.
        self._unfinished = 0
        self._idle = asyncio.Event()
        self._writes: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._write_room = asyncio.Semaphore(_MAX_WAITING_DOCUMENTS)
        self._throttle = HostThrottle()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        # One thread does every store write: one SQLite connection and one malloc arena, where
        # asyncio.to_thread would spread the writes (and their memory) over several threads.
        self._write_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._budget_left = options.max_pages  # the whole crawl's budget (--max-pages)
        # Each source's own page budget (``max_pages`` in its file).
        self._source_budget: dict[str, int | None] = {s.id: s.max_pages for s in sources}
        self._starts: set[str] = set()
        self._attachments_seen = UrlSet()
        self._archive = _ThreadedArchive(options.archive) if options.archive is not None else None
        #: The extraction plans of the crawl's sites, learned from its pages (one book: this
        #: process owns the crawl; the extraction processes get each page's site's plans).
        self._plans = PlanBook() if options.extraction_plans else None
        #: Pages handed to the extraction pool at once: enough to keep every process busy.
        self._pool_slots = asyncio.Semaphore(_POOL_SLOTS_PER_PROCESS * self._pool_size())
        self._stopping = False
        self._stopped = asyncio.Event()
        #: The signal that stopped the crawl, if one did (set by the command line's handler).
        self.stop_signal: int | None = None
        self._busy: dict[asyncio.Task[None], bool] = {}  # worker task -> in a visit
        self._retrying: set[asyncio.Task[None]] = set()

    @property
    def queue_size(self) -> int:
        return self._ready.qsize()

    @property
    def frontier(self) -> SpillingQueue:
        """The visits ready to go, in memory and spilled to a file."""
        return self._ready

    # -- stopping ---------------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop taking pages (call from the event loop, e.g. a signal handler). The pages in
        flight get :data:`STOP_GRACE` seconds (none with ``now``); whatever is left stays queued
        in the store for the next crawl."""
        self._stopping = True
        self.stats.interrupted = True
        if now:
            for task, busy in self._busy.items():
                if busy:
                    task.cancel()
        self._stopped.set()

    # -- the frontier (crawler.visit.Frontier) ----------------------------------------------------

    def _claim(self, url: str) -> bool:
        """Atomically (single event loop) mark ``url`` as taken; False if it already was."""
        if url in self.seen:
            return False
        self.seen.add(url)
        return True

    def redirect_claim(self, visit: Visit) -> Any:
        return self._claim

    async def follow(self, visit: Visit, children: list[Child]) -> tuple[int, int]:
        queued = not_due = 0
        now = utcnow()
        for child in children:
            if child.url in self.seen:
                continue
            known = self.known.get(child.url)
            if known is not None and not self.options.revisit_all and not is_due(known, now):
                self.seen.add(child.url)  # read by an earlier crawl; its next visit has not come
                not_due += 1
                continue
            revisit = known is not None  # a page an earlier crawl read, due again
            child_visit = Visit(child.url, visit.source_id, child.depth, run=self.run_id, revisit=revisit)
            if self._take(child_visit, durable=revisit):
                queued += 1
        return queued, not_due

    def _take(self, visit: Visit, *, durable: bool) -> bool:
        """Claim ``visit``'s URL and put it on the frontier: at once when the store already
        holds it (``durable``), else once its ``queued`` record is written."""
        if not self._claim(visit.url):
            return False
        self._unfinished += 1
        self._idle.clear()
        self.stats.queued += 1
        item = FrontierItem(visit.depth, next(self._seq), visit)
        if durable:
            self._ready.put_nowait(item)
        else:
            queued = UrlState(visit.url, visit.source_id, UrlStatus.QUEUED, visit.depth, fetched_at=utcnow())
            self._writes.put_nowait(("queued", queued, item))
        return True

    async def attachments(self, visit: Visit, links: list[AttachmentLink]) -> None:
        for link in links:
            if link.url in self._attachments_seen:
                continue
            self._attachments_seen.add(link.url)
            self._unfinished += 1
            item = FrontierItem(
                visit.depth + 1, next(self._seq), AttachmentVisit(link.url, visit.source_id, link.type)
            )
            # On the frontier once the page's batch (which records the links) is written.
            self._writes.put_nowait(("release", None, item))

    def _finish(self) -> None:
        self._unfinished -= 1
        if self._unfinished == 0:
            self._idle.set()

    # -- the host gate, budget, pages and sink (crawler.visit ports) -------------------------------

    async def acquire(self, host: str, *, delay: float, concurrency: int, holder: str) -> Turn:
        await self._throttle.acquire(host, delay=delay, concurrency=concurrency)
        return Turn(release=lambda: self._throttle.release(host))

    async def hop(self, host: str, *, delay: float) -> None:
        await self._throttle.wait_turn(host, delay=delay)

    def spent(self, visit: Visit, source: Source) -> bool:
        source_left = self._source_budget[source.id]
        return (self._budget_left is not None and self._budget_left <= 0) or (
            source_left is not None and source_left <= 0
        )

    def take(self, visit: Visit, source: Source) -> bool:
        if self.spent(visit, source):
            return False
        source_left = self._source_budget[source.id]
        if self._budget_left is not None:
            self._budget_left -= 1
        if source_left is not None:
            self._source_budget[source.id] = source_left - 1
        return True

    async def process(self, job: PageJob) -> PageOutcome:
        book = self._plans
        site = (job.source or "", host_of(job.final_url))
        if book is not None and job.kind is not PageKind.LIST and book.wants_load(*site):
            loop = asyncio.get_running_loop()
            try:
                stored = await loop.run_in_executor(self._write_thread, self.store.load_plans, *site)
            except Exception as exc:  # a store that fails ends the crawl in the writer, not here
                log.warning("reading extraction plans failed: %s", exc)
            else:
                book.install(*site, stored)
        # A page waits here rather than in the pool's queue, so that it takes the plans as they
        # are when its extraction starts: a plan learned meanwhile serves it.
        async with self._pool_slots:
            if book is not None and job.kind is not PageKind.LIST:
                job.plans = book.orders(*site)
            found = await self._in_pool(process_page, job, job.final_url)
        outcome = PageOutcome.failed(found) if isinstance(found, ExtractionError) else found
        if book is not None and outcome.plan_report is not None:
            book.record(*site, outcome.plan_report)
            outcome.plan_report = None
            if book.urgent or book.pending >= _PLAN_WRITE_EVERY:
                self._writes.put_nowait(("plans", None, book.take_writes()))
        return outcome

    async def process_attachment(self, job: AttachmentJob) -> AttachmentOutcome:
        found = await self._in_pool(process_attachment, job, job.url)
        if isinstance(found, ExtractionError):
            return AttachmentOutcome(sniff_type(job.body, job.declared_type), None, found.reason, str(found))
        return found

    async def _in_pool(self, work: Callable[[Any], T], job: Any, url: str) -> T | ExtractionError:
        """``work(job)`` in an extraction process; what stopped it when it could not finish."""
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, work, job)
            # The worker bounds its own time (the job's time_limit); this is the backstop for a
            # job stuck where the timer cannot interrupt it (inside a single C call).
            return await asyncio.wait_for(future, self.options.extract_timeout + _EXTRACT_GRACE)
        except TimeoutError:
            return ExtractionTimeout(f"extraction took longer than {self.options.extract_timeout:g} s")
        except BrokenProcessPool:
            if self._stopping:
                raise asyncio.CancelledError from None  # winding down: the page is handed back
            # A page crashed its worker process (e.g. a C-level fault): replace the pool.
            log.error("extraction process died on %s; restarting the pool", url)
            old = self._pool
            self._pool = self._new_pool()
            old.shutdown(wait=False, cancel_futures=True)
            return ExtractionCrashed("extraction process died")

    def _remember(self, state: UrlState) -> None:
        """Keep a URL's state in view while this run may still read it: a URL that is done for
        the run (claimed, in a final state) is never looked up again (``seen`` answers for it),
        so its state is let go; a crawl's memory stays flat in the number of URLs it has done."""
        if state.url in self.seen and state.status not in _REREAD:
            self.known.pop(state.url, None)
        else:
            self.known[state.url] = state

    async def record(self, state: UrlState) -> None:
        self._remember(state)
        self._writes.put_nowait(("state", state, None))

    async def attachment_known(self, url: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_thread, self.store.attachment_sha256, url) is not None

    async def attachment(self, record: Attachment) -> None:
        self._writes.put_nowait(("attachment", None, record))

    async def attachment_failed(self, url: str, error: CrawlerError) -> None:
        self._writes.put_nowait(("attachment_failed", None, (url, error.reason)))

    async def page(self, state: UrlState, outcome: PageOutcome) -> None:
        self._remember(state)
        await self._write_room.acquire()  # released once the writer has stored it
        self._writes.put_nowait(("page", state, outcome))

    # -- run --------------------------------------------------------------------------------------

    async def run(self) -> CrawlStats:
        self._pool = self._new_pool()
        options, limits = self.options, self.options.limits
        per_host = max(options.politeness.concurrency_for(s) for s in self.sources.values())
        writer = asyncio.create_task(self._writer())
        try:
            async with make_client(
                limits,
                max_connections=max(options.concurrency, 10),
                # Requests to one host are bounded by the per-host concurrency (HostThrottle); a
                # little slack covers redirect hops to a host between throttled requests.
                per_origin_connections=min(max(options.concurrency, 10), per_host + 2),
            ) as client:
                ports = VisitPorts(
                    client=client,
                    limits=limits,
                    robots=RobotsCache(client, limits.user_agent, policy=limits.network),
                    frontier=self,
                    gate=self,
                    budget=self,
                    sink=self,
                    pages=self,
                    politeness=options.politeness,
                    retry=options.retry,
                    extract_timeout=options.extract_timeout,
                    max_links=options.max_links,
                    archive=self._archive,
                    # No shingle set (~1,000 ints): it would cross the pipe only to be dropped;
                    # the store recomputes it from the text when a candidate needs it.
                    keep_shingles=False,
                )
                await self._start()
                workers = [asyncio.create_task(self._worker(ports)) for _ in range(options.concurrency)]
                self._busy = dict.fromkeys(workers, False)
                try:
                    if self._unfinished:
                        await self._until_done(writer)
                finally:
                    await self._wind_down(workers)
        finally:
            # Whatever was recorded is written out, whatever ended the run (a store that fails
            # raises its error here).
            if self._plans is not None:
                self._writes.put_nowait(("plans", None, self._plans.take_writes()))
            self._writes.put_nowait(None)
            try:
                await writer
            finally:
                self._pool.shutdown(wait=not self.stats.interrupted, cancel_futures=True)
                self._write_thread.shutdown(wait=True)
                self._ready.close()
                if self._archive is not None:
                    self._archive.close()
        self.stats.finished = time.monotonic()
        return self.stats

    async def _until_done(self, writer: asyncio.Task[None]) -> None:
        idle = asyncio.create_task(self._idle.wait())
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({idle, writer, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            stopped.cancel()
        if writer.done():  # the writer failed: the store's error ends the crawl
            writer.result()

    async def _wind_down(self, workers: list[asyncio.Task[None]]) -> None:
        """End the workers: idle ones at once; after a stop, busy ones get the grace period and
        are then cancelled (their URLs stay queued in the store)."""
        for task in self._retrying:
            task.cancel()
        for task, busy in self._busy.items():
            if not busy:
                task.cancel()
        busy_tasks = [t for t, busy in self._busy.items() if busy]
        if busy_tasks and self._stopping:
            _, busy_tasks_left = await asyncio.wait(busy_tasks, timeout=STOP_GRACE)
            busy_tasks = list(busy_tasks_left)
        for task in busy_tasks:
            task.cancel()
        await asyncio.gather(*workers, *self._retrying, return_exceptions=True)
        self.stats.waiting = self._unfinished

    async def _start(self) -> None:
        """Read what the store holds about the sources' URLs and queue the run's start
        (:func:`crawler.recrawl.plan_run`): start URLs, then the known URLs to visit again."""
        now = utcnow()
        for source_id in self.sources:
            for state in self.store.iter_urls(source=source_id):
                self.known[state.url] = state
        by_source: dict[str, list[UrlState]] = {source_id: [] for source_id in self.sources}
        for state in self.known.values():
            if state.source in by_source:
                by_source[state.source].append(state)
        starts: list[tuple[str, str]] = []
        resumed: list[tuple[str, UrlState]] = []
        for source_id, scope in self.scopes.items():
            plan = plan_run(
                scope,
                by_source[source_id],
                now,
                retry_failed=self.options.retry_failed,
                revisit_all=self.options.revisit_all,
                max_url_length=self.options.limits.max_url_length,
            )
            for raw, exc in plan.invalid:
                await self.record(failure_record(raw, source_id, 0, exc))
                self.stats.errors[exc.reason] += 1
            starts += [(source_id, url) for url in plan.starts]
            resumed += [(source_id, state) for state in plan.resumed]
        # The start URLs are recorded before any visit begins (they come first: the frontier is
        # ordered by depth, and a page budget must not go to deeper pages first).
        now = utcnow()
        queued = [UrlState(url, source_id, UrlStatus.QUEUED, 0, fetched_at=now) for source_id, url in starts]
        await asyncio.get_running_loop().run_in_executor(self._write_thread, self.store.add_queued, queued)
        for source_id, url in starts:
            self._starts.add(url)
            self._take(Visit(url, source_id, 0, run=self.run_id, revisit=True), durable=True)
        for source_id, state in sorted(resumed, key=lambda pair: (pair[1].depth, pair[1].url)):
            visit = Visit(state.url, source_id, state.depth, run=self.run_id, revisit=True)
            if self._take(visit, durable=True):
                self.stats.resumed += 1
        # Attachments whose download an earlier crawl did not get to (their links are stored).
        for source_id in self.sources:
            pending = await asyncio.get_running_loop().run_in_executor(
                self._write_thread, self.store.pending_attachments, source_id
            )
            for url, kind in pending:
                if url not in self._attachments_seen:
                    self._attachments_seen.add(url)
                    self._unfinished += 1
                    self._ready.put_nowait(
                        FrontierItem(0, next(self._seq), AttachmentVisit(url, source_id, kind))
                    )
        if self._unfinished:
            self._idle.clear()

    def _pool_size(self) -> int:
        return self.options.extract_workers or os.cpu_count() or 1

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self._pool_size(), mp_context=_pool_context(), initializer=_ignore_stop_signals
        )

    async def _worker(self, ports: VisitPorts) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._stopping:
            item = await self._ready.get()
            if self._stopping:
                break
            self._busy[task] = True
            try:
                result = await self._visit(item.visit, ports)
            finally:
                self._busy[task] = False
            self.stats.count(result)
            if result.status in ("fetched", "rejected", "not_modified", "redirected") and (
                isinstance(item.visit, Visit) and item.visit.depth == 0 and item.visit.url in self._starts
            ):
                self.stats.starts_answered += 1
            if result.status == "retry":
                retry = asyncio.create_task(self._retry_later(item, result.countdown))
                self._retrying.add(retry)
                retry.add_done_callback(self._retrying.discard)
            else:
                self._finish()

    async def _visit(self, visit: Visit | AttachmentVisit, ports: VisitPorts) -> VisitResult:
        source = self.sources[visit.source_id]
        if isinstance(visit, AttachmentVisit):
            try:
                return await run_attachment_visit(visit, source, self.scopes[source.id], ports)
            except Exception as exc:  # a bug costs one file, never the crawl
                log.exception("unexpected error on attachment %s", visit.url)
                bug = InternalError(f"{type(exc).__name__}: {exc}")
                await self.attachment_failed(visit.url, bug)
                return VisitResult("failed", error=bug, attachment=True)
        previous = self.known.get(visit.url)
        if already_done(previous, visit.since):
            return VisitResult("skipped")
        try:
            return await run_visit(visit, source, self.scopes[source.id], previous, ports)
        except Exception as exc:  # a bug must cost one URL, never the crawl
            log.exception("unexpected error on %s", visit.url)
            bug = InternalError(f"{type(exc).__name__}: {exc}")
            await self.record(
                failure_record(visit.url, source.id, visit.depth, bug, attempts=visit.attempt + 1)
            )
            return VisitResult("failed", error=bug)

    async def _retry_later(self, item: FrontierItem, delay: float) -> None:
        """Put a visit that failed transiently back on the frontier after ``delay`` seconds
        (its URL is recorded queued, with the reason, meanwhile)."""
        await asyncio.sleep(delay)
        self._ready.put_nowait(FrontierItem(item.depth, next(self._seq), item.visit.next_attempt()))

    # -- recording --------------------------------------------------------------------------------

    async def _writer(self) -> None:
        """Write records and documents in batches, off the event loop. A batch is whatever
        arrived while the previous one was written (group commit): no timer delays a URL's
        ``queued`` record, which its fetch waits for."""
        loop = asyncio.get_running_loop()
        done = False
        while not done:
            first = await self._writes.get()
            if first is None:
                break
            batch = [first]
            documents = int(first[0] == "page")
            while len(batch) < _WRITE_BATCH and documents < _WRITE_BATCH_DOCUMENTS:
                try:
                    entry = self._writes.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if entry is None:
                    done = True
                    break
                batch.append(entry)
                documents += entry[0] == "page"
            counts = await loop.run_in_executor(self._write_thread, self._flush, batch)
            for kind, _, item in batch:
                if kind in ("queued", "release"):
                    self._ready.put_nowait(item)
            for _ in range(documents):
                self._write_room.release()
            self.stats.documents_stored += counts["stored"]
            self.stats.versions += counts["version"]
            # a page that replaced its story's document made that one a copy: one more copy too
            self.stats.duplicates += counts["copy"] + counts["promoted"]
            # "unchanged": this URL stored this very text before, a re-crawl, not a copy
            self.stats.unchanged += counts["unchanged"]

    def _flush(self, batch: list[_Write]) -> Counter[str]:
        """Store a batch, in an order that a crash at any point leaves safe: the ``queued``
        records first (insert-if-absent: a URL with a state keeps it), then the states of pages
        without a document, then documents with their pages' states (copies recorded
        ``duplicate`` by the store in the same transaction) and the links to their attachments,
        then the attachments downloaded."""
        states: dict[str, list[UrlState]] = {"queued": [], "state": []}
        pages: list[tuple[UrlState, PageOutcome]] = []
        for kind, state, value in batch:
            if state is not None:
                if kind == "page":
                    pages.append((state, value))
                elif kind in states:
                    states[kind].append(state)
        self.store.add_queued(states["queued"])
        self.store.record_urls(states["state"])
        stories: list[tuple[Document, Fingerprint]] = []
        for _, outcome in pages:
            assert outcome.document is not None  # only pages with a document are sent as "page"
            stories.append((outcome.document, outcome.fingerprint or Fingerprint.of(outcome.document.text)))
        results = self.store.add_stories(
            stories,
            threshold=self.options.near_dup_threshold,
            keep_text=self.options.keep_duplicate_text,
            states=[state for state, _ in pages],
        )
        for state, outcome in pages:
            if outcome.attachments:
                self.store.link_attachments(state.url, outcome.attachments)
        for kind, _, value in batch:
            if kind == "attachment":
                self.store.add_attachment(value)
            elif kind == "plans":
                write_plans(self.store, value)
            elif kind == "attachment_failed":
                url, reason = value
                self.store.resolve_attachment(url, error_reason=reason)
        return Counter(result.status for result in results)
