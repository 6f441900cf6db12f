"""Turning one visit of a URL into records: Celery-free helpers shared by every crawl driver.

The embedded crawl (:mod:`crawler.crawl`) and the distributed workers (``workers/``) must agree
on what a visit produces: which :class:`~crawler.records.UrlState` a fetch error, a redirect or a
fetched page becomes, what :class:`~crawler.pipeline.PageJob` a fetched page is handed to the
extraction stage as, which delay a host gets, and when a failed fetch is worth another try. Those
decisions live here as plain functions so that both drivers (and their tests) share one copy.

Nothing here does I/O, imports Celery or talks to Redis.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from crawler.document import utcnow
from crawler.errors import FetchError, RobotsUnavailable, ServerError
from crawler.fetch import FetchResult
from crawler.links import PageKind
from crawler.pipeline import PageJob, PageOutcome
from crawler.records import MAX_ERROR_MESSAGE, UrlState, UrlStatus
from crawler.recrawl import links_digest, not_modified_state, schedule_visit
from crawler.robots import ROBOTS_FAILURE_TTL
from crawler.sources import Source
from crawler.urls import DEFAULT_MAX_URL_LENGTH

# -- politeness ----------------------------------------------------------------------------------


def host_delay(source: Source | None, default: float, robots_delay: float | None) -> float:
    """Seconds between two request starts on a host: the source's (or the default) delay, raised
    to the host's robots.txt Crawl-delay when that is longer (never lowered by it)."""
    base = default if source is None or source.per_host_delay is None else source.per_host_delay
    return max(base, robots_delay or 0.0)


def host_concurrency(source: Source | None, default: int) -> int:
    """Requests a source allows in flight on one host."""
    return default if source is None or source.per_host_concurrency is None else source.per_host_concurrency


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
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    fetched_at: datetime | None = None,
    time_limit: float | None = None,
    keep_shingles: bool = True,
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
        fetched_at=fetched_at or utcnow(),
        follow_links=depth < max_depth,
        max_url_length=max_url_length,
        time_limit=time_limit,
        keep_shingles=keep_shingles,
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
    or for a page without a document the digest of its links (see ``links_digest``). The caller
    turns it into DUPLICATE when the store records the document as a copy of another page's
    story (``Store.add_stories``; a text this same URL stored before is unchanged, not a copy)."""
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
    kind: PageKind,
    now: datetime,
    outcome: PageOutcome | None = None,
    attempts: int = 1,
) -> UrlState:
    """The record of a visit the server answered, with the URL's next visit scheduled
    (:mod:`crawler.recrawl`): ``not_modified`` for a 304 (the text we hold stays), ``redirected``
    for a redirect that was not followed, else :func:`fetched_state` of the page's ``outcome``."""
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
    return schedule_visit(
        state, previous, is_list=kind is PageKind.LIST, policy=source.revisit.policy(), now=now
    )


def already_done(state: UrlState | None, since: float | None = None) -> bool:
    """Whether a visit of a URL whose stored record is ``state`` has nothing left to do.

    ``since`` is None for a first visit: any recorded outcome means done (a task delivered twice
    does the work once). For a re-visit requested at ``since`` (epoch seconds: start and list
    pages of a scheduled run, retries of earlier transient failures), only an outcome recorded
    at or after ``since`` counts. QUEUED is never done: it marks a visit waiting for a retry or
    for a page budget.
    """
    if state is None or state.status == UrlStatus.QUEUED:
        return False
    if since is None:
        return True
    return state.fetched_at is not None and state.fetched_at.timestamp() >= since


# -- retries -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in count and in delay.

    ``ceiling`` bounds every delay including a server's Retry-After: a queue that holds delayed
    messages (Redis, with its visibility timeout) needs every delay below a known limit.
    """

    max_retries: int = 4
    base_delay: float = 2.0
    max_delay: float = 600.0
    ceiling: float = 1800.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry policy values must not be negative")
        if self.max_delay > self.ceiling:
            raise ValueError(f"max_delay {self.max_delay} exceeds the ceiling {self.ceiling}")


def retry_delay(
    exc: BaseException,
    attempt: int,
    policy: RetryPolicy = RetryPolicy(),
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
