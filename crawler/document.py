"""The one record that flows through the pipeline and into storage, and its attachments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Keys of one exported attachment (an element of a line's ``attachments`` list), in order.
ATTACHMENT_EXPORT_KEYS: tuple[str, ...] = ("url", "title", "type", "bytes", "sha256", "text")

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
    "attachments",
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
    #: What ranks the copies of a story (:func:`crawler.dedup.rank_key`), kept by the store but
    #: not exported: the role the source declares for the page's portal (``issuer``, ``repost``,
    #: None), whether pinyin readings were stripped from a converted repost, and whether
    #: replacement characters were dropped from the text (see :class:`crawler.pipeline.PageOutcome`).
    source_role: str | None = None
    converted: bool = False
    damaged: bool = False

    def to_export(self, attachments: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """The JSONL export form: exactly :data:`EXPORT_KEYS`, JSON-safe values.

        ``attachments``: the document's attachments in their export form
        (:data:`ATTACHMENT_EXPORT_KEYS`; see :meth:`Attachment.to_export` and
        :meth:`AttachmentLink.to_export`), kept by the store apart from the document.
        """
        data = asdict(self)
        fetched = self.fetched_at
        if fetched.tzinfo is None:
            fetched = fetched.replace(tzinfo=UTC)
        data["fetched_at"] = fetched.isoformat()
        data["attachments"] = list(attachments)
        return {key: data[key] for key in EXPORT_KEYS}


def attachment_export(
    url: str,
    title: str | None,
    type: str | None,
    size: int | None = None,
    sha256: str | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    """One element of an export line's ``attachments`` (:data:`ATTACHMENT_EXPORT_KEYS`)."""
    return {"url": url, "title": title, "type": type, "bytes": size, "sha256": sha256, "text": text}


@dataclass(slots=True, frozen=True)
class AttachmentLink:
    """A document file an article links (see :mod:`crawler.attachments`): canonical URL, the
    link's text, and the type its URL or link text names (None when only a download script's
    URL shape says it is a file; the bytes tell once downloaded)."""

    url: str
    title: str
    type: str | None

    def to_export(self) -> dict[str, Any]:
        """An attachment not (yet) downloaded: no size, hash or text."""
        return attachment_export(self.url, self.title, self.type)


@dataclass(slots=True)
class Attachment:
    """A downloaded attachment as stored: once per content (``sha256``), however many pages or
    URLs link it. ``url`` is where it was first downloaded; ``text`` is the text of a PDF or
    DOCX (None for other types, or with ``text_error``, a reason of :mod:`crawler.errors`)."""

    sha256: str
    url: str
    size: int
    type: str | None = None
    final_url: str | None = None
    content_type: str | None = None
    text: str | None = None
    text_error: str | None = None
    fetched_at: datetime = field(default_factory=utcnow)
