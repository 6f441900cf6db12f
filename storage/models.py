"""The records the store keeps besides :class:`crawler.document.Document`, and its one error.

Kept free of SQLAlchemy so that callers (the fetcher, the CLI, workers) can build and inspect
URL states without importing the database layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from crawler.errors import CrawlerError


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


class StorageError(CrawlerError):
    """The document store is unusable: bad URL, unreachable server, failed query.

    Messages never contain a database password (see :func:`mask_password`).
    """

    reason = "storage"


# userinfo in anything URL-like: scheme://user:password@host -> scheme://user:***@host
_USERINFO_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<pw>[^@\s]*)@")


def mask_password(text: str, password: str | None = None) -> str:
    """Hide credentials in ``text``: URL userinfo passwords, and ``password`` wherever it appears.

    Applied to every message a :class:`StorageError` carries, because those end up in logs and
    in the CLI output.
    """
    masked = _USERINFO_RE.sub(lambda m: f"{m.group('head')}:***@", text)
    if password:
        masked = masked.replace(password, "***")
    return masked
