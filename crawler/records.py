"""The records of a crawl besides :class:`crawler.document.Document`: what we know about each URL.

Every crawl driver (the embedded crawl, the Celery workers) and every store speaks these; they
live at the bottom of the package graph so that nothing here imports a store or a driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from crawler.errors import CrawlerError, DisallowedByRobots, OverBudget, RedirectOutOfScope


class UrlStatus(StrEnum):
    """Every URL we have seen is in exactly one of these states (stored as the string value)."""

    QUEUED = "queued"
    FETCHED = "fetched"
    NOT_MODIFIED = "not_modified"
    REDIRECTED = "redirected"
    FAILED_TRANSIENT = "failed_transient"
    FAILED_PERMANENT = "failed_permanent"
    DISALLOWED = "disallowed"
    OUT_OF_SCOPE = "out_of_scope"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class UrlState:
    """What we know about one URL: one row of the URL table, keyed by ``url``.

    ``error_reason`` is the machine-readable :attr:`crawler.errors.CrawlerError.reason`
    (``http_404``, ``robots``, ...); ``etag``/``last_modified`` are kept for conditional
    re-fetches; ``attempts`` only ever grows (the store keeps the maximum it has seen);
    ``next_visit_at``/``revisit_interval`` drive re-crawls (:mod:`crawler.recrawl`).
    ``content_hash`` is the key of the text the page gave, or for a page without a document
    (a list page) a ``links:`` digest of its links: what a re-visit compares to see a change.
    """

    url: str
    source: str | None
    status: UrlStatus
    depth: int = 0
    http_status: int | None = None
    final_url: str | None = None
    error_reason: str | None = None
    error_message: str | None = None
    fetched_at: datetime | None = None
    content_hash: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    attempts: int = 0
    #: When a crawl should visit the URL again (None: not automatically); see crawler.recrawl.
    next_visit_at: datetime | None = None
    #: The current revisit interval in seconds, adapted to how often the page changes.
    revisit_interval: float | None = None


#: Error messages are stored truncated: a URL table is not a log.
MAX_ERROR_MESSAGE = 500


def failure_record(
    url: str,
    source_id: str | None,
    depth: int,
    error: CrawlerError,
    *,
    attempts: int = 1,
    now: datetime | None = None,
    waiting: bool = False,
    keep: UrlState | None = None,
) -> UrlState:
    """The record of a visit that ended in ``error``: the one place a failure becomes a state.

    ``disallowed`` for a robots.txt refusal; ``out_of_scope`` for a redirect out of the source;
    ``queued`` for a visit that waits (``waiting``: a
    retry is scheduled; or a spent page budget), keeping the reason so that ``status`` and the
    URL table show why; else ``failed_transient`` or ``failed_permanent`` by the error's class.

    ``keep``: the URL's earlier record. A waiting record keeps its text key, validators and
    revisit interval, so that the visit that ends the wait is still conditional and its
    interval still adapts to how often the page changes.
    """
    if isinstance(error, DisallowedByRobots):
        status = UrlStatus.DISALLOWED
    elif isinstance(error, RedirectOutOfScope):
        status = UrlStatus.OUT_OF_SCOPE
    elif waiting or isinstance(error, OverBudget):
        status = UrlStatus.QUEUED
    elif error.transient:
        status = UrlStatus.FAILED_TRANSIENT
    else:
        status = UrlStatus.FAILED_PERMANENT
    record = UrlState(
        url,
        source_id,
        status,
        depth,
        http_status=getattr(error, "status", None),
        error_reason=error.reason,
        error_message=str(error)[:MAX_ERROR_MESSAGE] or None,
        fetched_at=now or datetime.now(UTC),
        attempts=attempts,
        # A redirect hop that failed names itself (the fetcher sets it on the error).
        final_url=getattr(error, "final_url", None),
    )
    if status is UrlStatus.QUEUED and keep is not None:
        record.content_hash, record.etag, record.last_modified = (
            keep.content_hash,
            keep.etag,
            keep.last_modified,
        )
        record.final_url, record.revisit_interval = keep.final_url, keep.revisit_interval
    return record
