"""The embedded crawl: one process, async I/O for fetching, a process pool for extraction.

Shape of the run::

    frontier (depth-ordered queue) ──> N fetch tasks ──> process pool ──> writer ──> store
          ^                              │ robots, per-host throttle        (batched, one
          └──── links in scope ──────────┘                                 thread, off-loop)

The event loop only does I/O and bookkeeping; decoding, link finding and extraction run in
worker processes (:func:`crawler.pipeline.process_page`), so every core extracts. Each URL is
claimed once (``seen``) before it is queued or followed as a redirect target, so no page is
fetched twice in one crawl. Every URL taken from the frontier ends recorded in the store with a
status and, for failures, a reason.

A crawl continues the store's earlier crawls of its sources (:mod:`crawler.recrawl`): it starts
from the start URLs and every known URL whose next visit has come (and those a page budget
left queued; with ``retry_failed``, those that failed transiently), skips known URLs that are
not due, and re-visits with conditional requests: a 304 stores nothing, a changed article is
stored as its next version.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from crawler.dedup import DEFAULT_PARAMS, Fingerprint
from crawler.document import Document, utcnow
from crawler.errors import (
    CrawlerError,
    ExtractionCrashed,
    ExtractionTimeout,
    FetchError,
    InternalError,
    InvalidURL,
    OverBudget,
)
from crawler.fetch import Fetcher, FetchLimits, make_client
from crawler.links import Scope
from crawler.pipeline import PageJob, PageOutcome, process_page
from crawler.politeness import HostThrottle
from crawler.records import UrlState, UrlStatus, failure_record
from crawler.recrawl import conditional_headers, is_due
from crawler.robots import RobotsCache
from crawler.sources import Source
from crawler.urls import canonicalize, host_of
from crawler.visit import (
    host_concurrency,
    host_delay,
    page_job,
    visit_state,
)

if TYPE_CHECKING:
    from settings import Settings
    from storage.sql import StoryOutcome

log = logging.getLogger(__name__)

_WRITE_BATCH = 200
_WRITE_INTERVAL = 0.5
_MAX_WAITING_DOCUMENTS = 128
_WRITE_BATCH_DOCUMENTS = _MAX_WAITING_DOCUMENTS // 2  # one batch is stored while the next fills
_EXTRACT_GRACE = 10.0
_MAX_REJECTED_MEMO = 100_000  # per source: links judged out of scope that are not judged again


class DocumentStore(Protocol):
    """What the crawl needs of a store (see :mod:`storage`)."""

    def add_stories(
        self,
        items: Sequence[tuple[Document, Fingerprint]],
        *,
        threshold: float,
        keep_text: bool,
        states: Sequence[UrlState] = (),
    ) -> Sequence[StoryOutcome]: ...

    def record_urls(self, states: Sequence[UrlState]) -> None: ...

    def iter_urls(self, *, source: str | None = None) -> Iterator[UrlState]: ...


@dataclass(slots=True)
class CrawlOptions:
    max_pages: int | None = None
    max_depth: int | None = None
    concurrency: int = 16
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0
    allow_private_networks: bool = False
    extract_workers: int = 0  # 0: one per core
    extract_timeout: float = 30.0
    near_dup_threshold: float = DEFAULT_PARAMS.threshold
    keep_duplicate_text: bool = False
    revisit_all: bool = False  # visit every known URL now, whatever its next-visit time
    retry_failed: bool = False  # visit again the URLs whose last visit failed transiently
    limits: FetchLimits = field(default_factory=lambda: FetchLimits(user_agent="policy-crawler/0.1"))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> CrawlOptions:
        values: dict[str, object] = {
            "concurrency": settings.concurrency,
            "per_host_concurrency": settings.per_host_concurrency,
            "per_host_delay": settings.per_host_delay,
            "allow_private_networks": settings.allow_private_networks,
            "extract_workers": settings.extract_workers,
            "extract_timeout": settings.extract_timeout,
            "near_dup_threshold": settings.near_dup_threshold,
            "keep_duplicate_text": settings.keep_duplicate_text,
            "limits": FetchLimits.from_settings(settings),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


@dataclass(slots=True)
class CrawlStats:
    pages_fetched: int = 0
    documents_stored: int = 0
    duplicates: int = 0  # pages recorded as copies of a stored story (exact or near)
    unchanged: int = 0  # re-crawled pages whose text this URL had already stored
    versions: int = 0  # re-crawled articles that changed: stored as a new version
    not_modified: int = 0  # re-visits answered 304
    resumed: int = 0  # known URLs queued at the start (due, left queued, or retried)
    redirects_skipped: int = 0
    bytes_fetched: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # links not followed, by reason
    queued: int = 0
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


def _pool_context() -> multiprocessing.context.BaseContext:
    # forkserver: workers fork from a clean process that has imported the pipeline once,
    # never from our threaded event-loop process.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["crawler.pipeline"])
        return ctx
    return multiprocessing.get_context("spawn")


@dataclass(order=True, slots=True)
class _Item:
    depth: int
    seq: int
    url: str = field(compare=False)
    source_id: str = field(compare=False)


class EmbeddedCrawl:
    def __init__(self, sources: Sequence[Source], store: DocumentStore, options: CrawlOptions) -> None:
        if not sources:
            raise ValueError("nothing to crawl: no sources")
        self.sources = {s.id: s for s in sources}
        self.scopes = {s.id: Scope(s, max_depth=options.max_depth) for s in sources}
        self.store = store
        self.options = options
        self.stats = CrawlStats()
        self.seen: set[str] = set()
        #: What earlier crawls recorded about the sources' URLs (loaded when the run starts).
        self.known: dict[str, UrlState] = {}
        self._rejected: dict[str, dict[str, str]] = {}  # per source: URL -> why not followed
        self._now = utcnow()
        self._queue: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._writes: asyncio.Queue[tuple[UrlState, PageOutcome | None] | None] = asyncio.Queue()
        # Documents waiting for the writer: bounded, so that a writer slower than extraction
        # (its near-duplicate checks grow with the store) slows the crawl instead of growing it.
        self._write_room = asyncio.Semaphore(_MAX_WAITING_DOCUMENTS)
        self._throttle = HostThrottle(delay=options.per_host_delay, concurrency=options.per_host_concurrency)
        self._delay_set: set[str] = set()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        # One thread does every store write: one SQLite connection and one malloc arena, where
        # asyncio.to_thread would spread the writes (and their memory) over several threads.
        self._write_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._budget_left = options.max_pages  # the whole crawl's budget (--max-pages)
        # Each source's own page budget (``max_pages`` in its file).
        self._source_budget: dict[str, int | None] = {s.id: s.max_pages for s in sources}

    @property
    def queue_size(self) -> int:
        return self._queue.qsize()

    # -- frontier ---------------------------------------------------------------------------------

    def _claim(self, url: str) -> bool:
        """Atomically (single event loop) mark ``url`` as taken; False if it already was."""
        if url in self.seen:
            return False
        self.seen.add(url)
        return True

    def _offer(self, url: str, source_id: str, depth: int) -> bool:
        if url in self.seen:
            return False  # queued or judged before: skip the scope check
        rejected = self._rejected.get(source_id)
        if rejected is not None and url in rejected:
            self.stats.skipped[rejected[url]] += 1
            return False
        verdict = self.scopes[source_id].judge(url, depth)
        if not verdict.follow:
            reason = verdict.reason or "skipped"
            self.stats.skipped[reason] += 1
            memo = self._rejected.setdefault(source_id, {})
            if reason != "too_deep" and len(memo) < _MAX_REJECTED_MEMO:
                # Every other reason is a property of the URL alone, and the same chrome links
                # appear on every page of a site: judge each once.
                memo[url] = reason
            return False
        known = self.known.get(url)
        if known is not None and not self.options.revisit_all and not is_due(known, self._now):
            self.seen.add(url)  # visited by an earlier crawl, and its next visit has not come
            self.stats.skipped["not_due"] += 1
            return False
        return self._enqueue(url, source_id, depth)

    def _enqueue(self, url: str, source_id: str, depth: int) -> bool:
        if not self._claim(url):
            return False
        self._queue.put_nowait(_Item(depth, next(self._seq), url, source_id))
        self.stats.queued += 1
        return True

    def _load_known(self) -> None:
        """Read what earlier crawls recorded about the sources' URLs, and queue the ones to visit
        again now (:meth:`_resumes`)."""
        self._now = utcnow()
        for source_id in self.sources:
            for state in self.store.iter_urls(source=source_id):
                self.known[state.url] = state
        for state in sorted(self.known.values(), key=lambda s: (s.depth, s.url)):
            assert state.source is not None  # loaded by source
            if (
                self._resumes(state)
                and self.scopes[state.source].judge(state.url, state.depth).follow
                and self._enqueue(state.url, state.source, state.depth)
            ):
                self.stats.resumed += 1

    def _resumes(self, state: UrlState) -> bool:
        """Whether a known URL is visited again from the start of this crawl: never after a
        permanent failure, a robots.txt refusal or leaving the scope; after a transient failure
        only when retries are asked for; otherwise when due, or always with ``revisit_all``."""
        if state.status in (UrlStatus.FAILED_PERMANENT, UrlStatus.DISALLOWED, UrlStatus.OUT_OF_SCOPE):
            return False
        if state.status == UrlStatus.FAILED_TRANSIENT:
            return self.options.retry_failed
        return self.options.revisit_all or is_due(state, self._now)

    # -- run --------------------------------------------------------------------------------------

    async def run(self) -> CrawlStats:
        self._pool = self._new_pool()
        limits = self.options.limits
        per_host = max(
            [self.options.per_host_concurrency] + [s.per_host_concurrency or 0 for s in self.sources.values()]
        )
        async with make_client(
            limits,
            allow_private_networks=self.options.allow_private_networks,
            max_connections=max(self.options.concurrency, 10),
            # Requests to one host are bounded by the per-host concurrency (HostThrottle); a
            # little slack covers redirect hops to a host between throttled requests.
            per_origin_connections=min(max(self.options.concurrency, 10), per_host + 2),
        ) as client:
            self._robots = RobotsCache(client, limits.user_agent)
            self._fetcher = Fetcher(
                client, limits, robots=self._robots, block_private=not self.options.allow_private_networks
            )
            self._load_known()
            for source in self.sources.values():
                for url in source.start_urls:
                    try:
                        self._offer(canonicalize(url, max_length=limits.max_url_length), source.id, 0)
                    except InvalidURL as exc:
                        self._record_failure(url, source.id, 0, exc)
            writer = asyncio.create_task(self._writer())
            tasks = [asyncio.create_task(self._worker()) for _ in range(self.options.concurrency)]
            try:
                joined = asyncio.create_task(self._queue.join())
                await asyncio.wait({joined, writer}, return_when=asyncio.FIRST_COMPLETED)
                if not joined.done():  # the writer failed: the store's error ends the crawl
                    joined.cancel()
                    writer.result()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self._writes.put(None)
                await writer
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._write_thread.shutdown(wait=True)
        self.stats.finished = time.monotonic()
        return self.stats

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        workers = self.options.extract_workers or os.cpu_count() or 1
        return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context())

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._visit(item)
            except Exception as exc:  # a bug must cost one URL, never the crawl
                log.exception("unexpected error on %s", item.url)
                bug = InternalError(f"{type(exc).__name__}: {exc}")
                self._record_failure(item.url, item.source_id, item.depth, bug)
            finally:
                self._queue.task_done()

    async def _visit(self, item: _Item) -> None:
        url, source_id, depth = item.url, item.source_id, item.depth
        source = self.sources[source_id]
        source_left = self._source_budget[source_id]
        if (self._budget_left is not None and self._budget_left <= 0) or (
            source_left is not None and source_left <= 0
        ):
            # Over a page budget: kept as queued so that a later crawl can resume it.
            self._record(failure_record(url, source_id, depth, OverBudget(f"{source_id}: page budget spent")))
            self.stats.skipped["page_budget"] += 1
            return
        if self._budget_left is not None:
            self._budget_left -= 1
        if source_left is not None:
            self._source_budget[source_id] = source_left - 1
        scope = self.scopes[source_id]
        host = host_of(url)
        previous = self.known.get(url)
        try:
            await self._robots(url)
            await self._configure_host(host, url, source)
            async with self._throttle.slot(host):
                result = await self._fetcher.fetch(
                    url, headers=conditional_headers(previous), claim=self._claim
                )
        except FetchError as exc:
            self._record_failure(url, source_id, depth, exc)
            return
        kind = scope.judge(url, depth).kind
        if result.not_modified or result.is_redirect:
            if result.not_modified:
                self.stats.not_modified += 1
            else:
                self.stats.redirects_skipped += 1
            self._record(visit_state(url, source, depth, result, previous, kind=kind, now=utcnow()))
            return
        self.stats.pages_fetched += 1
        self.stats.bytes_fetched += len(result.body)
        job = page_job(
            url,
            result,
            kind=kind,
            source=source,
            depth=depth,
            max_depth=scope.max_depth,
            max_url_length=self.options.limits.max_url_length,
            time_limit=self.options.extract_timeout,
            # No shingle set (~1,000 ints): it would cross the pipe only to be dropped, and a page
            # waiting for the writer then costs little more than its text. The writer falls
            # behind as the store grows (more near-duplicate candidates to check), and the
            # shingle sets of the waiting pages were the crawl's growing memory.
            keep_shingles=False,
        )
        outcome = await self._process(job)
        for link in outcome.links:
            self._offer(link, source_id, depth + 1)
        if outcome.error_reason:
            self.stats.errors[outcome.error_reason] += 1
        state = visit_state(
            url, source, depth, result, previous, kind=kind, outcome=outcome, now=job.fetched_at
        )
        if outcome.document is not None:
            await self._write_room.acquire()  # released once the writer has stored it
        await self._writes.put((state, outcome if outcome.document is not None else None))

    async def _configure_host(self, host: str, url: str, source: Source) -> None:
        if host in self._delay_set:
            return
        self._delay_set.add(host)
        robots_delay = await self._robots.crawl_delay(url)
        self._throttle.configure(
            host,
            delay=host_delay(source, self.options.per_host_delay, robots_delay),
            concurrency=host_concurrency(source, self.options.per_host_concurrency),
        )

    async def _process(self, job: PageJob) -> PageOutcome:
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, process_page, job)
            # The worker bounds its own time (PageJob.time_limit); this is the backstop for a
            # page stuck where the timer cannot interrupt it (inside a single C call).
            return await asyncio.wait_for(future, self.options.extract_timeout + _EXTRACT_GRACE)
        except TimeoutError:
            return PageOutcome.failed(
                ExtractionTimeout(f"extraction took longer than {self.options.extract_timeout:g} s")
            )
        except BrokenProcessPool:
            # A page crashed its worker process (e.g. a C-level fault): replace the pool.
            log.error("extraction process died on %s; restarting the pool", job.final_url)
            old = self._pool
            self._pool = self._new_pool()
            old.shutdown(wait=False, cancel_futures=True)
            return PageOutcome.failed(ExtractionCrashed("extraction process died"))

    # -- recording --------------------------------------------------------------------------------

    def _record_failure(self, url: str, source_id: str, depth: int, exc: CrawlerError) -> None:
        self.stats.errors[exc.reason] += 1
        self._record(failure_record(url, source_id, depth, exc))

    def _record(self, state: UrlState) -> None:
        self._writes.put_nowait((state, None))

    async def _writer(self) -> None:
        """Batch URL states and documents into few transactions, run off the event loop."""
        done = False
        while not done:
            batch: list[tuple[UrlState, PageOutcome | None]] = []
            item = await self._writes.get()
            if item is None:
                done = True
            else:
                batch.append(item)
                documents = int(item[1] is not None)
                deadline = time.monotonic() + _WRITE_INTERVAL
                while len(batch) < _WRITE_BATCH and documents < _WRITE_BATCH_DOCUMENTS:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._writes.get(), timeout)
                    except TimeoutError:
                        break
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                    documents += item[1] is not None
            if batch:
                stored, versions, duplicates, unchanged = await asyncio.get_running_loop().run_in_executor(
                    self._write_thread, self._flush, batch
                )
                for _ in range(documents):
                    self._write_room.release()
                self.stats.documents_stored += stored
                self.stats.versions += versions
                self.stats.duplicates += duplicates
                self.stats.unchanged += unchanged

    def _flush(self, batch: list[tuple[UrlState, PageOutcome | None]]) -> tuple[int, int, int, int]:
        """Store a batch: new stories, copies of earlier ones (URL state ``duplicate``, set by the
        store in the same transaction), re-crawls; then the states of the pages without a text."""
        pages = [
            (state, outcome.document, outcome.fingerprint or Fingerprint.of(outcome.document.text))
            for state, outcome in batch
            if outcome is not None and outcome.document is not None
        ]
        results = self.store.add_stories(
            [(document, fingerprint) for _, document, fingerprint in pages],
            threshold=self.options.near_dup_threshold,
            keep_text=self.options.keep_duplicate_text,
            states=[state for state, _, _ in pages],
        )
        without_text = [state for state, outcome in batch if outcome is None or outcome.document is None]
        self.store.record_urls(without_text)
        counts = Counter(result.status for result in results)
        # "unchanged": this URL stored this very text before, a re-crawl, not a copy
        return counts["stored"], counts["version"], counts["copy"], counts["unchanged"]
