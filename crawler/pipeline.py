"""The CPU-bound part of handling one fetched page, as one picklable function.

``process_page`` runs in a worker process (the embedded crawl's process pool, or a Celery
worker): decode the bytes once, find the links (selectolax), extract and normalize the body
(trafilatura + domain rules), compute its dedup fingerprint (:mod:`crawler.dedup`), and list
the document files it links (:mod:`crawler.attachments`). ``process_attachment`` does the same
for a downloaded attachment: its type and its text. Neither raises: a bad page or file comes
back as an outcome with an error reason, counted and dropped, and the crawl goes on.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from crawler.attachments import AttachmentFile, AttachmentLink, attachment_text, sniff_type
from crawler.decode import decode_html
from crawler.dedup import Fingerprint
from crawler.dedup import content_hash as _content_hash
from crawler.document import Attachment, Document, utcnow
from crawler.errors import (
    DamagedText,
    DecodeCrashed,
    EmptyExtraction,
    ExtractionCrashed,
    ExtractionError,
    ExtractionTimeout,
    InvalidURL,
    UnreadableAttachment,
)
from crawler.extract import Extraction, extract
from crawler.fastread import parse as parse_lexbor
from crawler.links import DEFAULT_MAX_LINKS_PER_PAGE, LinkTargets, PageKind, extract_links_capped
from crawler.plans import PlanOrders, PlanReport, extract_planned
from crawler.urls import DEFAULT_MAX_URL_LENGTH, canonicalize

log = logging.getLogger(__name__)

#: Pages of unknown kind (sources without URL patterns) shorter than this are hubs, not articles.
MIN_ARTICLE_CHARS = 80


@dataclass(slots=True)
class PageJob:
    url: str
    final_url: str
    body: bytes
    kind: PageKind = PageKind.ANY
    http_charset: str | None = None
    encoding_hint: str | None = None
    source: str | None = None
    #: The role the source declares for the page's portal (:meth:`crawler.sources.Source.role_for`).
    source_role: str | None = None
    fetched_at: datetime = field(default_factory=utcnow)
    follow_links: bool = True
    max_url_length: int = DEFAULT_MAX_URL_LENGTH
    time_limit: float | None = None  # seconds; None: no bound inside the worker
    #: Whether the fingerprint keeps its shingle set (~1,000 ints). A caller in another process
    #: that does not compare texts itself says no: the set would be pickled, sent and dropped
    #: (the store recomputes it from the text when a candidate needs it).
    keep_shingles: bool = True
    #: Links kept from the page, in page order (``CRAWLER_MAX_LINKS_PER_PAGE``; None: all).
    max_links: int | None = DEFAULT_MAX_LINKS_PER_PAGE
    #: The extraction plans of the page's site (:mod:`crawler.plans`); None: trafilatura only.
    plans: PlanOrders | None = None


@dataclass(slots=True)
class PageOutcome:
    links: list[str] = field(default_factory=list)
    document: Document | None = None
    encoding: str | None = None
    error_reason: str | None = None
    error_message: str | None = None
    #: The document's dedup keys (exact hash, MinHash signature, LSH bands), computed here in the
    #: worker process so that the single writer only looks up and compares.
    fingerprint: Fingerprint | None = None
    #: Links past ``PageJob.max_links`` that were not kept (distinct targets as written).
    links_dropped: int = 0
    #: The page lost bytes before or while it was decoded: replacement runs (U+FFFD, 锟斤拷) were
    #: dropped from its stored text or title. The document is kept; crawl stats count these
    #: (reason :class:`crawler.errors.DamagedText`).
    damaged: bool = False
    #: The page was a converted repost: pinyin readings were removed from its text and title
    #: (for ranking the copies of a story: an unconverted copy is the cleaner one).
    converted: bool = False
    #: The document files the article links (its body or its 附件 block), in page order.
    attachments: list[AttachmentLink] = field(default_factory=list)
    #: What the site's extraction plans did with the page (for the crawl's :class:`crawler.plans.PlanBook`).
    plan_report: PlanReport | None = None

    @classmethod
    def failed(cls, error: ExtractionError) -> PageOutcome:
        """The outcome of a page that gave no document because of ``error``."""
        outcome = cls()
        outcome.fail(error)
        return outcome

    def fail(self, error: ExtractionError) -> None:
        """Record why the page gave no document (its reason comes from the error's class)."""
        self.error_reason, self.error_message = error.reason, str(error)


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ExtractionTimeout in this process after ``seconds`` of work.

    A pathological page (deeply nested tables, huge link farms) can keep lxml and trafilatura
    busy for minutes; the caller giving up waiting is not enough, the worker would stay busy.
    An interval timer interrupts the work itself. Only in a main thread on POSIX (signals are
    delivered there); elsewhere the caller's own timeout is the bound.
    """
    if (
        not seconds
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    fired = False
    message = f"extraction took longer than {seconds:g} s"

    def on_alarm(signum: int, frame: object) -> None:
        nonlocal fired
        fired = True
        raise ExtractionTimeout(message)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if fired:
        # The alarm's exception landed inside code that caught it (trafilatura falls back on
        # any exception) and the work went on: the page still overran its time.
        raise ExtractionTimeout(message)


def process_page(job: PageJob) -> PageOutcome:
    """Decode, find links, extract and fingerprint one page, within ``job.time_limit``."""
    try:
        with time_limit(job.time_limit):
            return _process_page(job)
    except ExtractionTimeout as exc:
        return PageOutcome.failed(exc)


def _process_page(job: PageJob) -> PageOutcome:
    outcome = PageOutcome()
    try:
        decoded = decode_html(job.body, job.http_charset, job.encoding_hint)
    except ExtractionTimeout:
        raise  # the page's time is up: handled by process_page, not swallowed as a crash
    except Exception as exc:  # decode_html must not raise; a bug here must not kill the crawl
        log.exception("decoding %s failed", job.final_url)
        return PageOutcome.failed(DecodeCrashed(f"{type(exc).__name__}: {exc}"))
    outcome.encoding = decoded.encoding

    # lexbor's parse and the page's link targets: the links stage's, and a served page's when
    # its plan reads lexbor's tree (crawler.fastread)
    tree, hrefs = None, None
    if job.follow_links:
        try:
            tree = parse_lexbor(decoded.text)
            targets = LinkTargets.of(tree)
            hrefs = [href for href, _ in targets.anchors]
            outcome.links, outcome.links_dropped = extract_links_capped(
                decoded.text,
                job.final_url,
                max_url_length=job.max_url_length,
                limit=job.max_links,
                targets=targets,
            )
        except ExtractionTimeout:
            raise
        except Exception as exc:  # selectolax on a hostile page: keep going without links
            log.warning("link extraction failed on %s: %s", job.final_url, exc)

    if job.kind is PageKind.LIST:
        return outcome
    try:
        if job.plans is None:
            extraction = extract(decoded.text, job.final_url)
        else:
            extraction = extract_planned(
                decoded.text,
                job.final_url,
                job.plans,
                lambda report: setattr(outcome, "plan_report", report),
                tree,
                hrefs,
            )
    except EmptyExtraction as exc:
        if job.kind is PageKind.ARTICLE:
            outcome.fail(exc)
        return outcome
    except ExtractionError as exc:
        outcome.fail(exc)
        return outcome
    except Exception as exc:  # trafilatura/lxml on a pathological page
        log.exception("extraction crashed on %s", job.final_url)
        outcome.fail(ExtractionCrashed(f"{type(exc).__name__}: {exc}"))
        return outcome

    if job.kind is PageKind.ANY and len(extraction.text) < MIN_ARTICLE_CHARS:
        return outcome  # a hub or list page of a pattern-less source, not an article

    outcome.converted = extraction.converted
    outcome.attachments = extraction.attachments
    if extraction.damaged:
        outcome.damaged = True
        log.info("%s on %s: replacement characters dropped from the text", DamagedText.reason, job.final_url)
    outcome.fingerprint = Fingerprint.of(extraction.text, keep_shingles=job.keep_shingles)
    outcome.document = build_document(
        extraction,
        content_hash=outcome.fingerprint.content_hash,
        url=job.url,
        final_url=job.final_url,
        source=job.source,
        source_role=job.source_role,
        fetched_at=job.fetched_at,
        max_url_length=job.max_url_length,
    )
    return outcome


def build_document(
    extraction: Extraction,
    *,
    url: str,
    final_url: str,
    source: str | None = None,
    source_role: str | None = None,
    fetched_at: datetime | None = None,
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    content_hash: str | None = None,
) -> Document:
    """The stored record of an extraction: the page's declared canonical URL when it is a valid
    http(s) URL (else the final URL), the dedup hash of the text (``content_hash``: already
    computed by the caller with the fingerprint), and what ranks it among its story's copies
    (its portal's role, converted, damaged)."""
    canonical = final_url
    if extraction.canonical_url:
        try:
            canonical = canonicalize(extraction.canonical_url, max_length=max_url_length)
        except InvalidURL:
            pass
    return Document(
        url=url,
        final_url=final_url,
        canonical_url=canonical,
        source=source,
        title=extraction.title,
        published_at=extraction.published_at,
        agency=extraction.agency,
        document_number=extraction.document_number,
        author=extraction.author,
        text=extraction.text,
        content_hash=content_hash or _content_hash(extraction.text),
        fetched_at=fetched_at or utcnow(),
        lang=extraction.lang,
        source_role=source_role,
        converted=extraction.converted,
        damaged=extraction.damaged,
    )


# -- attachments ----------------------------------------------------------------------------------


@dataclass(slots=True)
class AttachmentJob:
    """A downloaded attachment for :func:`process_attachment`: its bytes and what its link and
    response said it is."""

    url: str
    body: bytes
    declared_type: str | None = None  # the link's type (AttachmentLink.type)
    content_type: str | None = None
    time_limit: float | None = None


@dataclass(slots=True)
class AttachmentOutcome:
    """The attachment's type (from its bytes first), its text (PDF and DOCX; None otherwise or
    when it has none), and why there is no text when extraction failed."""

    type: str | None
    text: str | None = None
    error_reason: str | None = None
    error_message: str | None = None


def process_attachment(job: AttachmentJob) -> AttachmentOutcome:
    """Type and text of one attachment, within ``job.time_limit``; never raises."""
    kind = sniff_type(job.body, job.declared_type, job.content_type)
    outcome = AttachmentOutcome(kind)
    try:
        with time_limit(job.time_limit):
            outcome.text = attachment_text(kind, job.body)
    except ExtractionError as exc:  # unreadable, no text, or out of time
        outcome.error_reason, outcome.error_message = exc.reason, str(exc)
    except Exception as exc:  # a parser bug on a hostile file costs this file's text only
        log.exception("attachment text extraction crashed on %s", job.url)
        error = UnreadableAttachment(f"{type(exc).__name__}: {exc}")
        outcome.error_reason, outcome.error_message = error.reason, str(error)
    return outcome


def attachment_record(file: AttachmentFile, outcome: AttachmentOutcome) -> Attachment:
    """The stored form of a downloaded attachment and what :func:`process_attachment` found."""
    return Attachment(
        sha256=file.sha256,
        url=file.url,
        size=file.size,
        type=outcome.type,
        final_url=file.final_url,
        content_type=file.content_type or None,
        text=outcome.text,
        text_error=outcome.error_reason,
        fetched_at=file.fetched_at,
    )
