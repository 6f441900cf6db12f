"""Extraction and dedup again, from the raw archive, with no network (``crawler reextract``).

Every page's latest archived response (by ``WARC-Date``, per visited URL) goes through the same
:func:`crawler.pipeline.process_page` as in a crawl, with the kind the crawl gave the page, and
its document through the store's ``add_stories``: a text this URL already holds is
``unchanged``, a changed one is stored as the URL's next version (the earlier one stays, see
the README's "Re-crawls"), a page that gives a document for the first time is a new story (or a
copy of one). The page's attachment links are recorded again. Each archived attachment file's
text is extracted again (:func:`crawler.pipeline.process_attachment`) and replaced where it
changed. Nothing is fetched; URL states are left as the crawl recorded them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from crawler.archive import (
    KIND_ATTACHMENT,
    KIND_FIELD,
    REQUESTED_FIELD,
    SOURCE_FIELD,
    ArchivedResponse,
    read_archive,
)
from crawler.attachments import type_of_url
from crawler.dedup import DEFAULT_PARAMS, Fingerprint
from crawler.document import Attachment, AttachmentLink, Document
from crawler.fetch import parse_content_type
from crawler.links import PageKind
from crawler.pipeline import AttachmentJob, PageJob, PageOutcome, process_attachment, process_page

log = logging.getLogger(__name__)

_BATCH = 100
_PAGE_KINDS = frozenset(k.value for k in PageKind)


class StoryOutcomeLike(Protocol):
    @property
    def status(self) -> str: ...


class ReextractStore(Protocol):
    """What re-extraction needs of a store (see :class:`storage.Store`)."""

    def add_stories(
        self, items: Sequence[tuple[Document, Fingerprint]], *, threshold: float, keep_text: bool
    ) -> Sequence[StoryOutcomeLike]: ...

    def link_attachments(self, document_url: str, links: Sequence[AttachmentLink]) -> None: ...

    def get_attachment(self, sha256: str) -> Attachment | None: ...

    def add_attachment(self, attachment: Attachment) -> bool: ...

    def update_attachment_text(self, sha256: str, text: str | None, text_error: str | None) -> None: ...

    def resolve_attachment(
        self, url: str, *, sha256: str | None = None, error_reason: str | None = None
    ) -> None: ...


@dataclass(slots=True)
class ReextractReport:
    pages: int = 0  # archived page responses re-extracted (the latest per URL)
    documents: Counter[str] = field(default_factory=Counter)  # stored / version / copy / unchanged
    errors: Counter[str] = field(default_factory=Counter)  # pages without a document, by reason
    changed: list[str] = field(default_factory=list)  # URLs stored with a new version
    new: list[str] = field(default_factory=list)  # URLs that gave a new story
    attachments: int = 0  # distinct attachment files read
    attachments_changed: list[str] = field(default_factory=list)  # sha256 whose text changed
    attachments_added: int = 0  # files the store did not hold yet
    read: set[str] = field(default_factory=set)  # sha256 of the attachment files read


def latest_records(
    paths: Iterable[str | os.PathLike[str]], *, source: str | None = None
) -> tuple[set[str], set[str]]:
    """Record ids of the latest page response per visited URL, and of one response per
    attachment URL (its latest), reading only the WARC headers."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    pages: dict[str, tuple[datetime, str]] = {}
    files: dict[str, tuple[datetime, str]] = {}
    for path in paths:
        with open(path, "rb") as stream:
            try:
                for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=False):
                    headers = record.headers
                    if source is not None and headers.get(SOURCE_FIELD) != source:
                        continue
                    url = headers.get(REQUESTED_FIELD) or headers.get("WARC-Target-URI") or ""
                    date = record.record_date
                    if date is None:
                        continue
                    table = files if headers.get(KIND_FIELD) == KIND_ATTACHMENT else pages
                    seen = table.get(url)
                    if seen is None or date >= seen[0]:
                        table[url] = (date, str(record.record_id))
            except (OSError, ValueError) as exc:
                log.warning("%s: stopped reading at a damaged record: %s", path, exc)
    return {rid for _, rid in pages.values()}, {rid for _, rid in files.values()}


def reextract(
    paths: Sequence[str | os.PathLike[str]],
    store: ReextractStore,
    *,
    source: str | None = None,
    encoding_hints: Mapping[str, str | None] | None = None,
    roles: Callable[[str | None, str], str | None] | None = None,
    threshold: float = DEFAULT_PARAMS.threshold,
    keep_text: bool = False,
    time_limit: float | None = None,
) -> ReextractReport:
    """Re-extract the archive's pages (and attachment texts) into ``store``; what changed.

    ``encoding_hints``: a source id's declared encoding (its file's ``encoding``), as the crawl
    gives it to :class:`PageJob`. ``roles``: the role a page's source declares for its portal,
    from the source id and the page's final URL (:meth:`crawler.sources.Source.role_for`), so
    that the store ranks the re-extracted copies of a story as the crawl did.
    """
    report = ReextractReport()
    hints = encoding_hints or {}
    page_ids, file_ids = latest_records(paths, source=source)
    batch: list[tuple[str, PageOutcome]] = []
    files: dict[str, str] = {}  # attachment URL -> sha256 of its archived file
    for response in read_archive(paths, source=source):
        if response.record_id in file_ids and response.kind == KIND_ATTACHMENT:
            _reextract_attachment(response, store, report, files, time_limit)
            continue
        if response.record_id not in page_ids:
            continue
        report.pages += 1
        _mime, charset = parse_content_type(response.header("content-type"))
        kind = PageKind(response.kind) if response.kind in _PAGE_KINDS else PageKind.ANY
        job = PageJob(
            url=response.url,
            final_url=response.final_url,
            body=response.body,
            kind=kind,
            http_charset=charset,
            encoding_hint=hints.get(response.source or ""),
            source=response.source,
            source_role=roles(response.source, response.final_url) if roles is not None else None,
            fetched_at=response.fetched_at,
            follow_links=False,
            time_limit=time_limit,
        )
        outcome = process_page(job)
        if outcome.document is None:
            if outcome.error_reason:
                report.errors[outcome.error_reason] += 1
            continue
        batch.append((response.url, outcome))
        if len(batch) >= _BATCH:
            _store(batch, store, report, threshold, keep_text)
            batch = []
    _store(batch, store, report, threshold, keep_text)
    for url, digest in files.items():  # the pages' links are recorded now: point them at the files
        store.resolve_attachment(url, sha256=digest)
    return report


def _store(
    batch: list[tuple[str, PageOutcome]],
    store: ReextractStore,
    report: ReextractReport,
    threshold: float,
    keep_text: bool,
) -> None:
    if not batch:
        return
    items = []
    for _, outcome in batch:
        assert outcome.document is not None
        items.append((outcome.document, outcome.fingerprint or Fingerprint.of(outcome.document.text)))
    results = store.add_stories(items, threshold=threshold, keep_text=keep_text)
    for (url, outcome), result in zip(batch, results, strict=True):
        report.documents[result.status] += 1
        if result.status == "version":
            report.changed.append(url)
        elif result.status == "stored":
            report.new.append(url)
        if outcome.attachments:
            store.link_attachments(url, outcome.attachments)


def _reextract_attachment(
    response: ArchivedResponse,
    store: ReextractStore,
    report: ReextractReport,
    files: dict[str, str],
    time_limit: float | None,
) -> None:
    digest = hashlib.sha256(response.body).hexdigest()
    files[response.url] = digest
    if digest in report.read:
        return  # the same file at another URL: read once
    report.read.add(digest)
    report.attachments += 1
    content_type = response.header("content-type")
    stored = store.get_attachment(digest)
    job = AttachmentJob(
        response.url,
        response.body,
        # what the crawl found, else what the URL names (an OLE2 .wps looks like a .doc)
        declared_type=stored.type if stored is not None else type_of_url(response.url)[0],
        content_type=content_type,
        time_limit=time_limit,
    )
    outcome = process_attachment(job)
    if stored is None:
        report.attachments_added += 1
        store.add_attachment(
            Attachment(
                sha256=digest,
                url=response.url,
                size=len(response.body),
                type=outcome.type,
                final_url=response.final_url,
                content_type=parse_content_type(content_type)[0] or None,
                text=outcome.text,
                text_error=outcome.error_reason,
                fetched_at=response.fetched_at,
            )
        )
    elif (stored.text, stored.text_error) != (outcome.text, outcome.error_reason):
        store.update_attachment_text(digest, outcome.text, outcome.error_reason)
        report.attachments_changed.append(digest)
