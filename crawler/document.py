"""The one record that flows through the pipeline and into storage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Keys of one exported JSONL line, in order. Part of the public contract.
EXPORT_KEYS: tuple[str, ...] = (
    "url",
    "final_url",
    "canonical_url",
    "source",
    "title",
    "published_at",
    "agency",
    "document_number",
    "author",
    "text",
    "content_hash",
    "fetched_at",
    "lang",
    "duplicate_of",
    "version",
    "previous_version",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Document:
    """A normalized article.

    ``url`` is the URL we were asked to fetch, ``final_url`` where redirects ended,
    ``canonical_url`` what the page declares (``<link rel=canonical>``) or else ``final_url``.
    ``published_at`` is ISO 8601 (a date, or a date and time) or None. ``content_hash`` is the
    dedup key (see :mod:`crawler.dedup`); it is empty until the dedup stage has run.
    """

    url: str
    final_url: str
    text: str
    canonical_url: str | None = None
    source: str | None = None
    title: str | None = None
    published_at: str | None = None
    agency: str | None = None
    #: The official document number (发文字号) a policy carries, e.g. 国科发〔2024〕12号.
    document_number: str | None = None
    author: str | None = None
    content_hash: str = ""
    fetched_at: datetime = field(default_factory=utcnow)
    lang: str | None = None
    duplicate_of: str | None = None
    #: 1 for the first text stored for ``url``; a re-crawl that finds the article changed stores
    #: the new text as the next version, ``previous_version`` naming the earlier one's hash.
    version: int = 1
    previous_version: str | None = None

    def to_export(self) -> dict[str, Any]:
        """The JSONL export form: exactly :data:`EXPORT_KEYS`, JSON-safe values."""
        data = asdict(self)
        fetched = self.fetched_at
        if fetched.tzinfo is None:
            fetched = fetched.replace(tzinfo=UTC)
        data["fetched_at"] = fetched.isoformat()
        return {key: data[key] for key in EXPORT_KEYS}
