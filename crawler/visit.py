"""One visit of a URL: the routine both crawl drivers run, and the records it produces.

A visit is the same whichever driver runs it: the page budget, robots.txt, the host's turn,
the fetch (every redirect hop checked against robots.txt and given its own host's turn), a 304
or a redirect, extraction (:func:`crawler.pipeline.process_page`), the links worth following,
and the records. :func:`run_visit` is that routine. It talks to a driver only through small
ports, each with an in-process version in the embedded crawl (:mod:`crawler.crawl`) and a Redis
one in the Celery workers (``workers/tasks.py``):

* :class:`Frontier`: claims redirect targets and follows links (claim, record ``queued``, send);
* :class:`HostGate`: a host's turn (its delay and request slots); the workers' gate may answer
  "come back later" instead of holding a worker;
* :class:`Budget`: the page budget of a crawl or a run;
* :class:`Sink`: where records and documents go;
* :class:`Pages`: where extraction runs (a process pool, or in place);
* :class:`Archive`: the raw archive (WARC) of every fetched page and attachment, if kept.

The files an article links (its 附件: PDF, DOCX, ...) are downloaded by a visit of their own,
:func:`run_attachment_visit` (:class:`AttachmentVisit`), with the same robots.txt, address policy
and host turns as pages; a Celery worker runs it as a task of its own queue, so that a slow PDF
never holds a page worker.

What is left to a driver is its own concern: the embedded crawl schedules a retry on its own
frontier, a Celery task raises ``self.retry`` with a countdown. The message of a visit is one
dataclass, :class:`Visit`, for the embedded frontier, the Celery sender, the task and its retry.

Nothing here imports Celery, Redis or a store.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx

from crawler.attachments import AttachmentFile, fetch_attachment
from crawler.document import Attachment, AttachmentLink, utcnow
from crawler.errors import (
    CrawlerError,
    DisallowedByRobots,
    FetchError,
    OverBudget,
    RedirectOutOfScope,
    RobotsUnavailable,
    ServerError,
)
from crawler.fetch import Fetcher, FetchLimits, FetchResult
from crawler.links import PageKind, Scope
from crawler.pipeline import (
    AttachmentJob,
    AttachmentOutcome,
    PageJob,
    PageOutcome,
    attachment_record,
)
from crawler.records import MAX_ERROR_MESSAGE, UrlState, UrlStatus, failure_record
from crawler.recrawl import conditional_headers, links_digest, not_modified_state, schedule_visit
from crawler.robots import ROBOTS_FAILURE_TTL, RobotsCache
from crawler.sources import Source
from crawler.urls import host_of

# -- the message ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit of a URL on behalf of a source: what the frontier holds and a message carries.

    ``attempt`` counts earlier tries that failed transiently (0: the first). ``run`` is the
    start of the crawl run (epoch seconds, also its name); ``revisit`` marks a visit of a URL
    an earlier run saw (start and list pages, due pages, retried and resumed ones): such a
    visit is done only when its stored outcome is newer than the run (:func:`already_done`).
    """

    url: str
    source_id: str
    depth: int
    attempt: int = 0
    run: float | None = None
    revisit: bool = False
    #: An earlier delivery of this visit was cut short and may have claimed links it never
    #: queued: this one sends such links again (a message that is put off keeps the mark).
    recovering: bool = False
    #: Sent by the visit that gave the URL its first record (``queued``, just now): nothing
    #: else is stored of it, so a first delivery need not read the store (a delivery again, or
    #: a retry, still does).
    fresh: bool = False

    @property
    def since(self) -> float | None:
        return self.run if self.revisit else None

    def next_attempt(self) -> Visit:
        return replace(self, attempt=self.attempt + 1)

    # The wire form of a Celery message: positional (url, source_id, depth), the rest by name.
    # Messages in flight keep working across versions as long as this form stays.

    def args(self) -> tuple[str, str, int]:
        return (self.url, self.source_id, self.depth)

    def kwargs(self) -> dict[str, Any]:
        found: dict[str, Any] = {"attempt": self.attempt, "run": self.run, "revisit": self.revisit}
        if self.recovering:  # only when set: messages stay readable by workers of before
            found["recovering"] = True
        if self.fresh:
            found["fresh"] = True
        return found

    @classmethod
    def from_message(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Visit:
        url, source_id, depth = args
        return cls(
            str(url),
            str(source_id),
            int(depth),
            int(kwargs.get("attempt") or 0),
            None if kwargs.get("run") is None else float(kwargs["run"]),
            bool(kwargs.get("revisit")),
            bool(kwargs.get("recovering")),
            bool(kwargs.get("fresh")),
        )


@dataclass(frozen=True, slots=True)
class AttachmentVisit:
    """One download of a document file an article links, on behalf of the article's source;
    ``type`` is what the link said it is (the bytes decide). Its message form, as for
    :class:`Visit`: positional (url, source_id), the rest by name."""

    url: str
    source_id: str
    type: str | None = None
    attempt: int = 0

    def next_attempt(self) -> AttachmentVisit:
        return replace(self, attempt=self.attempt + 1)

    def args(self) -> tuple[str, str]:
        return (self.url, self.source_id)

    def kwargs(self) -> dict[str, Any]:
        return {"type": self.type, "attempt": self.attempt}

    @classmethod
    def from_message(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AttachmentVisit:
        url, source_id = args
        kind = kwargs.get("type")
        return cls(
            str(url), str(source_id), None if kind is None else str(kind), int(kwargs.get("attempt") or 0)
        )


VisitStatus = Literal[
    "fetched",  # a page was read (its document, if any, went to the sink)
    "rejected",  # read, but extraction refused it (recorded failed_permanent with the reason)
    "not_modified",
    "redirected",  # a redirect whose target is visited on its own
    "disallowed",
    "failed",
    "retry",  # a transient failure: try again after ``countdown`` seconds
    "deferred",  # the host's turn is later: come back after ``countdown`` seconds (no try spent)
    "over_budget",
    "skipped",  # nothing left to do (a message delivered twice)
    "unknown_source",
    "worker_lost",
]


@dataclass(slots=True)
class VisitResult:
    """What a visit came to; a driver turns ``retry``/``deferred`` into a visit later."""

    status: VisitStatus
    countdown: float = 0.0
    error: CrawlerError | None = None
    #: Links queued for a visit of their own.
    queued: int = 0
    #: Attachment downloads a stored page sent.
    attachments: int = 0
    #: The result of an attachment download (:func:`run_attachment_visit`), not of a page.
    attachment: bool = False
    #: Links not followed, by reason (out_of_scope, denied, not_due, ...).
    skipped: Counter[str] = field(default_factory=Counter)
    #: Body bytes read (a page, not a 304 or a redirect).
    bytes: int = 0
    #: The extraction outcome of a fetched page (``fetched``/``rejected``).
    outcome: PageOutcome | None = None

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "queued": self.queued, "countdown": round(self.countdown, 3)}


@dataclass(frozen=True, slots=True)
class Child:
    """A link worth following: its URL, its depth and what the source's patterns make of it."""

    url: str
    depth: int
    kind: PageKind
    #: Re-visited by every run (a list page or a start page), not visited once for good.
    per_run: bool


# -- ports ----------------------------------------------------------------------------------------


class Frontier(Protocol):
    def redirect_claim(self, visit: Visit) -> Callable[[str], bool]:
        """Who may follow a redirect of ``visit`` to a target: True for the one visit that
        claims it (the target is then read as part of this visit)."""

    async def follow(self, visit: Visit, children: list[Child]) -> tuple[int, int]:
        """Claim, record (``queued``) and send the links nobody queued before; returns
        ``(queued, not_due)``: links queued, and links known and not due again yet."""

    async def attachments(self, visit: Visit, links: list[AttachmentLink]) -> None:
        """Send the downloads of a stored page's attachments (their links are recorded with the
        page, :meth:`Sink.page`: a download that never happens is found pending later)."""


@dataclass(slots=True)
class Turn:
    """A host's answer: granted (``release`` when the request is done), or ``later`` seconds."""

    release: Callable[[], None] = lambda: None
    later: float | None = None


class HostGate(Protocol):
    async def acquire(self, host: str, *, delay: float, concurrency: int, holder: str) -> Turn:
        """Wait for ``host``'s turn (``delay`` between starts, ``concurrency`` in flight), or
        answer with a time to come back (a gate that must not hold its worker)."""

    async def hop(self, host: str, *, delay: float) -> None:
        """The turn of a redirect hop to ``host`` (the request is already under way: wait)."""


class Budget(Protocol):
    def spent(self, visit: Visit, source: Source) -> bool:
        """Whether a budget of ``visit`` is already spent (checked before waiting for a host's
        turn, so that pages past the budget do not queue for it)."""

    def take(self, visit: Visit, source: Source) -> bool:
        """Count one page against the budgets; False once one is spent (taken after the host's
        turn: a visit sent away to come back later spends nothing)."""


class Sink(Protocol):
    async def record(self, state: UrlState) -> None:
        """Record a URL's state (upsert)."""

    async def page(self, state: UrlState, outcome: PageOutcome) -> None:
        """Store a page's document (a story, a copy or a version) with its URL's state, and
        the links to its attachments."""

    async def attachment_known(self, url: str) -> bool:
        """Whether the attachment at ``url`` was downloaded before (for any page)."""

    async def attachment(self, record: Attachment) -> None:
        """Store a downloaded attachment (once per sha256) and resolve the links to its URL."""

    async def attachment_failed(self, url: str, error: CrawlerError) -> None:
        """Record why the attachment at ``url`` could not be had, on every link to it."""


class Pages(Protocol):
    async def process(self, job: PageJob) -> PageOutcome:
        """Decode, find links, extract and fingerprint one page (never raises)."""

    async def process_attachment(self, job: AttachmentJob) -> AttachmentOutcome:
        """The type and text of a downloaded attachment (never raises)."""


class Archive(Protocol):
    async def page(self, result: FetchResult, *, kind: str, source: str) -> None:
        """Keep a fetched page's request and response."""

    async def attachment(self, file: AttachmentFile, *, source: str) -> None:
        """Keep a downloaded attachment's request and response."""


# -- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in count and in delay.

    ``ceiling`` bounds every delay including a server's Retry-After: a queue that holds delayed
    messages (Redis, with its visibility timeout) needs every delay below a known limit.
    Built by :meth:`settings.Settings.retry_policy`.
    """

    max_retries: int
    base_delay: float
    max_delay: float
    ceiling: float

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry policy values must not be negative")
        if self.max_delay > self.ceiling:
            raise ValueError(f"max_delay {self.max_delay} exceeds the ceiling {self.ceiling}")


def retry_delay(
    exc: BaseException,
    attempt: int,
    policy: RetryPolicy,
    *,
    rng: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before trying again after ``exc`` ended try number ``attempt`` (0 = first),
    or None when the visit should be recorded as failed now.

    * permanent errors (4xx, robots disallow, not HTML, too large, invalid URL) and anything that
      is not a :class:`FetchError`: None, never retried;
    * transient ones (timeouts, connection errors, 5xx, 429, robots.txt unavailable): retried
      ``max_retries`` times, waiting ``uniform(0, min(max_delay, base * 2**attempt))`` ("full
      jitter": retries of many URLs spread out instead of arriving together);
    * a server's Retry-After is a floor on that wait; robots.txt failures wait at least as long
      as the robots cache remembers the failure (an earlier try could not succeed);
    * every delay is capped at ``policy.ceiling``.
    """
    if not isinstance(exc, FetchError) or not exc.transient:
        return None
    if attempt >= policy.max_retries:
        return None
    backoff = min(policy.max_delay, policy.base_delay * 2 ** max(attempt, 0))
    delay = rng() * backoff
    if isinstance(exc, ServerError) and exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    if isinstance(exc, RobotsUnavailable):
        delay = max(delay, ROBOTS_FAILURE_TTL)
    return min(delay, policy.ceiling)


@dataclass(frozen=True, slots=True)
class Politeness:
    """How hard a crawl may press a host.

    ``delay``/``concurrency``: the defaults (settings) for hosts whose source says nothing;
    ``delay_override``/``concurrency_override``: a command line's ``--delay``/``--concurrency``,
    which win over a source's own values. robots.txt's Crawl-delay still raises the delay.
    """

    delay: float
    concurrency: int
    delay_override: float | None = None
    concurrency_override: int | None = None

    def delay_for(self, source: Source | None, robots_delay: float | None) -> float:
        """Seconds between two request starts on a host of ``source`` (None: a host outside it)."""
        if self.delay_override is not None:
            base = self.delay_override
        elif source is not None and source.per_host_delay is not None:
            base = source.per_host_delay
        else:
            base = self.delay
        return max(base, robots_delay or 0.0)

    def concurrency_for(self, source: Source | None) -> int:
        """Requests in flight on one host of ``source``."""
        if self.concurrency_override is not None:
            return self.concurrency_override
        if source is not None and source.per_host_concurrency is not None:
            return source.per_host_concurrency
        return self.concurrency


@dataclass(slots=True)
class VisitPorts:
    """Everything a visit needs from its driver (see the module docstring)."""

    client: httpx.AsyncClient
    limits: FetchLimits
    robots: RobotsCache
    frontier: Frontier
    gate: HostGate
    budget: Budget
    sink: Sink
    pages: Pages
    politeness: Politeness
    retry: RetryPolicy
    extract_timeout: float
    #: Links kept per page (``CRAWLER_MAX_LINKS_PER_PAGE``); the rest are counted as dropped.
    max_links: int
    #: Whether fingerprints keep their shingle sets (a driver whose extraction runs in other
    #: processes says no: the set would be pickled only to be dropped).
    keep_shingles: bool = True
    #: The raw archive, or None when it is switched off.
    archive: Archive | None = None
    #: The clock of the records (tests may stop it).
    now: Callable[[], datetime] = utcnow


# -- the visit ------------------------------------------------------------------------------------


def already_done(state: UrlState | None, since: float | None = None) -> bool:
    """Whether a visit of a URL whose stored record is ``state`` has nothing left to do.

    ``since`` is None for a first visit: any recorded outcome means done (a task delivered twice
    does the work once). For a re-visit requested at ``since`` (epoch seconds: start and list
    pages of a run, due pages, retries of earlier transient failures), only an outcome recorded
    at or after ``since`` counts. QUEUED is never done: it marks a visit waiting for a retry or
    for a page budget.
    """
    if state is None or state.status == UrlStatus.QUEUED:
        return False
    if since is None:
        return True
    return state.fetched_at is not None and state.fetched_at.timestamp() >= since


class _Hops:
    """The fetcher's per-hop hooks: :meth:`check` refuses a redirect that leaves the source's
    scope; the call itself checks robots.txt for every hop, and gives every redirect hop its
    own host's turn (the first hop's turn was taken before fetching)."""

    def __init__(self, ports: VisitPorts, source: Source, scope: Scope) -> None:
        self.ports, self.source, self.scope = ports, source, scope
        self.count = 0

    async def __call__(self, url: str) -> None:
        robots = self.ports.robots
        await robots(url)
        self.count += 1
        if self.count == 1:
            return
        owner = self.source if self.scope.host_allowed(url) else None
        delay = self.ports.politeness.delay_for(owner, await robots.crawl_delay(url))
        await self.ports.gate.hop(host_of(url), delay=delay)

    def check(self, target: str) -> None:
        """A redirect target on a host the source does not cover, or that its deny patterns
        refuse, is not followed (a hop out of scope would fetch what a link there never would)."""
        why = self.scope.refuses(target)
        if why is not None:
            raise RedirectOutOfScope(
                f"redirect to {target} leaves the scope of {self.source.id}: {why}", final_url=target
            )


async def run_visit(
    visit: Visit, source: Source, scope: Scope, previous: UrlState | None, ports: VisitPorts
) -> VisitResult:
    """Visit one URL (see the module docstring); ``previous`` is its stored record, if any.

    Raises only what a driver must handle itself: failures of its own infrastructure (a store
    or a broker that is down) and cancellation.
    """
    url, depth, attempts = visit.url, visit.depth, visit.attempt + 1
    host = host_of(url)
    if ports.budget.spent(visit, source):
        await ports.sink.record(failure_record(url, source.id, depth, _over_budget(source), keep=previous))
        return VisitResult("over_budget")
    try:
        await ports.robots(url)
        delay = ports.politeness.delay_for(source, await ports.robots.crawl_delay(url))
        turn = await ports.gate.acquire(
            host, delay=delay, concurrency=ports.politeness.concurrency_for(source), holder=url
        )
        if turn.later is not None:
            return VisitResult("deferred", countdown=turn.later)
        try:
            if not ports.budget.take(visit, source):
                spent = failure_record(url, source.id, depth, _over_budget(source), keep=previous)
                await ports.sink.record(spent)
                return VisitResult("over_budget")
            hops = _Hops(ports, source, scope)
            fetcher = Fetcher(ports.client, ports.limits, robots=hops, hop_check=hops.check)
            result = await fetcher.fetch(
                url, headers=conditional_headers(previous), claim=ports.frontier.redirect_claim(visit)
            )
        finally:
            turn.release()
    except FetchError as exc:
        return await _failed(visit, source, exc, previous, ports)

    kind = scope.judge(url, depth).kind
    is_list = kind is PageKind.LIST or url in scope.start_urls
    now = ports.now()
    if result.not_modified or result.is_redirect:
        answered = visit_state(
            url, source, depth, result, previous, is_list=is_list, now=now, attempts=attempts
        )
        await ports.sink.record(answered)
        return VisitResult("not_modified" if result.not_modified else "redirected")

    if ports.archive is not None:
        await ports.archive.page(result, kind=kind.value, source=source.id)
    job = page_job(
        url,
        result,
        kind=kind,
        source=source,
        depth=depth,
        max_depth=scope.max_depth,
        max_url_length=ports.limits.max_url_length,
        fetched_at=now,
        time_limit=ports.extract_timeout,
        keep_shingles=ports.keep_shingles,
        max_links=ports.max_links,
    )
    outcome = await ports.pages.process(job)
    done = VisitResult(
        "rejected" if outcome.error_reason else "fetched", bytes=len(result.body), outcome=outcome
    )
    # Links are queued before the page's state is recorded: a visit cut short in between is
    # done again (its page is still queued) instead of losing its links.
    children = _children(visit, scope, outcome.links, done.skipped)
    if children:
        done.queued, not_due = await ports.frontier.follow(visit, children)
        if not_due:
            done.skipped["not_due"] += not_due
    state = visit_state(
        url, source, depth, result, previous, is_list=is_list, outcome=outcome, now=now, attempts=attempts
    )
    if outcome.document is not None:
        await ports.sink.page(state, outcome)
        if outcome.attachments:
            await ports.frontier.attachments(visit, outcome.attachments)
            done.attachments = len(outcome.attachments)
    else:
        await ports.sink.record(state)
    return done


async def run_attachment_visit(
    job: AttachmentVisit, source: Source, scope: Scope, ports: VisitPorts
) -> VisitResult:
    """Download one attachment, keep it in the archive, find its type and text, store it.

    The same robots.txt, address policy, host turns and retries as a page. Not the source's
    scope: a portal's files often live on another host (a file server), and the article that
    links them is in scope. A file already downloaded (for another page) is not fetched again.
    """
    if await ports.sink.attachment_known(job.url):
        return VisitResult("skipped", attachment=True)
    host = host_of(job.url)
    try:
        await ports.robots(job.url)
        owner = source if scope.host_allowed(job.url) else None
        delay = ports.politeness.delay_for(owner, await ports.robots.crawl_delay(job.url))
        turn = await ports.gate.acquire(
            host, delay=delay, concurrency=ports.politeness.concurrency_for(owner), holder=job.url
        )
        if turn.later is not None:
            return VisitResult("deferred", countdown=turn.later, attachment=True)
        try:
            fetcher = Fetcher(ports.client, ports.limits, robots=_Hops(ports, source, scope))
            file = await fetch_attachment(fetcher, job.url)
        finally:
            turn.release()
    except FetchError as exc:
        delay_s = retry_delay(exc, job.attempt, ports.retry)
        if delay_s is not None:
            return VisitResult("retry", countdown=delay_s, error=exc, attachment=True)
        await ports.sink.attachment_failed(job.url, exc)
        return VisitResult("failed", error=exc, attachment=True)
    if ports.archive is not None:
        await ports.archive.attachment(file, source=source.id)
    outcome = await ports.pages.process_attachment(
        AttachmentJob(job.url, file.body, job.type, file.content_type, time_limit=ports.extract_timeout)
    )
    await ports.sink.attachment(attachment_record(file, outcome))
    return VisitResult("fetched", bytes=file.size, attachment=True)


def _over_budget(source: Source) -> CrawlerError:
    return OverBudget(f"the page budget of {source.id} is spent; the URL waits for a later crawl")


async def _failed(
    visit: Visit, source: Source, exc: FetchError, previous: UrlState | None, ports: VisitPorts
) -> VisitResult:
    """Record a failed fetch: retried later when it is transient and tries are left."""
    attempts = visit.attempt + 1
    delay = retry_delay(exc, visit.attempt, ports.retry)
    if delay is None:
        await ports.sink.record(failure_record(visit.url, source.id, visit.depth, exc, attempts=attempts))
        status: VisitStatus = "disallowed" if isinstance(exc, DisallowedByRobots) else "failed"
        return VisitResult(status, error=exc)
    waiting = failure_record(
        visit.url, source.id, visit.depth, exc, attempts=attempts, waiting=True, keep=previous
    )
    await ports.sink.record(waiting)
    return VisitResult("retry", countdown=delay, error=exc)


def _children(visit: Visit, scope: Scope, links: list[str], skipped: Counter[str]) -> list[Child]:
    """The links of a page worth following, in page order; the others counted by reason."""
    depth = visit.depth + 1
    children: list[Child] = []
    for link in links:
        verdict = scope.judge(link, depth)
        if not verdict.follow:
            skipped[verdict.reason or "skipped"] += 1
            continue
        per_run = verdict.kind is PageKind.LIST or link in scope.start_urls
        children.append(Child(link, depth, verdict.kind, per_run))
    return children


# -- records -------------------------------------------------------------------------------------


def redirect_state(
    url: str,
    source_id: str | None,
    depth: int,
    result: FetchResult,
    *,
    attempts: int = 1,
    now: datetime | None = None,
) -> UrlState:
    """A redirect that was not followed because its target is (or was) visited on its own."""
    return UrlState(
        url,
        source_id,
        UrlStatus.REDIRECTED,
        depth,
        http_status=result.status,
        final_url=result.final_url,
        fetched_at=now or utcnow(),
        attempts=attempts,
    )


def page_job(
    url: str,
    result: FetchResult,
    *,
    kind: PageKind,
    source: Source | None,
    depth: int,
    max_depth: int,
    max_url_length: int,
    fetched_at: datetime | None = None,
    time_limit: float | None = None,
    keep_shingles: bool = True,
    max_links: int | None = None,
) -> PageJob:
    """What the extraction stage gets for a fetched page. Links are only wanted when following
    them could still stay within the depth limit."""
    return PageJob(
        url=url,
        final_url=result.final_url,
        body=result.body,
        kind=kind,
        http_charset=result.charset,
        encoding_hint=source.encoding if source is not None else None,
        source=source.id if source is not None else None,
        source_role=source.role_for(result.final_url) if source is not None else None,
        fetched_at=fetched_at or utcnow(),
        follow_links=depth < max_depth,
        max_url_length=max_url_length,
        time_limit=time_limit,
        keep_shingles=keep_shingles,
        max_links=max_links,
    )


def fetched_state(
    url: str,
    source_id: str | None,
    depth: int,
    result: FetchResult,
    outcome: PageOutcome,
    *,
    attempts: int = 1,
    fetched_at: datetime | None = None,
) -> UrlState:
    """The record of a fetched page: FETCHED, or FAILED_PERMANENT when extraction rejected it
    (the page will not get better by fetching it again). ``content_hash`` is the document's key,
    or for a page without a document the digest of its links (see ``links_digest``). The store
    records it as DUPLICATE when the document is a copy of another page's story
    (``Store.add_stories``; a text this same URL stored before is unchanged, not a copy)."""
    state = UrlState(
        url,
        source_id,
        UrlStatus.FETCHED,
        depth,
        http_status=result.status,
        final_url=result.final_url,
        fetched_at=fetched_at or utcnow(),
        etag=result.etag,
        last_modified=result.last_modified,
        attempts=attempts,
    )
    if outcome.error_reason:
        state.status = UrlStatus.FAILED_PERMANENT
        state.error_reason = outcome.error_reason
        state.error_message = (outcome.error_message or "")[:MAX_ERROR_MESSAGE] or None
    if outcome.document is not None:
        state.content_hash = outcome.document.content_hash
    elif not outcome.error_reason:
        state.content_hash = links_digest(outcome.links)
    return state


def visit_state(
    url: str,
    source: Source,
    depth: int,
    result: FetchResult,
    previous: UrlState | None,
    *,
    is_list: bool,
    now: datetime,
    outcome: PageOutcome | None = None,
    attempts: int = 1,
) -> UrlState:
    """The record of a visit the server answered, with the URL's next visit scheduled
    (:mod:`crawler.recrawl`; ``is_list``: a list or start page, read again often):
    ``not_modified`` for a 304 (the text we hold stays), ``redirected`` for a redirect that was
    not followed, else :func:`fetched_state` of the page's ``outcome``."""
    if result.not_modified:
        assert previous is not None  # the fetcher refuses a 304 to a request without validators
        state = not_modified_state(
            previous,
            source=source.id,
            depth=depth,
            etag=result.etag,
            last_modified=result.last_modified,
            now=now,
            attempts=attempts,
        )
    elif result.is_redirect:
        state = redirect_state(url, source.id, depth, result, attempts=attempts, now=now)
    elif outcome is None:
        raise ValueError(f"a fetched page needs its extraction outcome: {url}")
    else:
        state = fetched_state(url, source.id, depth, result, outcome, attempts=attempts, fetched_at=now)
    return schedule_visit(state, previous, is_list=is_list, policy=source.revisit.policy(), now=now)
