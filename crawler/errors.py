"""Every outcome the crawl records as a failure, as a class, and whether retrying can help.

The tree::

    CrawlerError
    ├── ConfigError                   bad settings or a bad source file (names file, field, problem)
    ├── FetchError                    fetching a URL did not give us a usable HTML page
    │   ├── TransientFetchError       worth retrying later, with backoff
    │   │   ├── FetchTimeout          timeout        connect/read timeout or page deadline exceeded
    │   │   ├── ConnectionFailed      connection     DNS failure, refused or reset connection
    │   │   ├── ServerError           http_5xx/429   HTTP 5xx, or 429 (carries ``retry_after``)
    │   │   ├── RobotsUnavailable     robots_unavailable  robots.txt answered 5xx or not at all
    │   │   └── HostBusy              throttled      the host's turn did not come in time
    │   └── PermanentFetchError       retrying will not help; recorded with its reason
    │       ├── InvalidURL            invalid_url    malformed, unsupported scheme, too long
    │       ├── BlockedAddress        blocked_address  resolves to an address the policy refuses
    │       ├── DisallowedByRobots    robots         robots.txt forbids the URL for our user agent
    │       ├── HTTPStatusError       http_4xx       HTTP 4xx other than 429
    │       ├── TooManyRedirects      redirects      redirect limit reached
    │       │   └── RedirectLoop      redirect_loop  a redirect back to a URL of the same chain
    │       ├── RedirectOutOfScope    redirect_out_of_scope  a redirect hop leaves the source's scope
    │       ├── NotHTML               not_html       the response is not an HTML document
    │       │   └── BadContentEncoding  bad_encoding  unsupported or corrupt Content-Encoding
    │       ├── NotADocument          not_document   an attachment link answered with a web page
    │       └── BodyTooLarge          too_large      body (after decompression) exceeds the cap
    ├── ExtractionError               a fetched page gave no usable document
    │   ├── EmptyExtraction           empty          no body text found
    │   ├── GarbledText               garbled        the text still looks like mojibake
    │   ├── ExtractionTimeout         extract_timeout  extraction ran past its time limit
    │   ├── ExtractionCrashed         extract_crash  the extractor (or its process) died on the page
    │   ├── UnreadableAttachment      unreadable_attachment  a PDF/DOCX that cannot be parsed
    │   ├── DecodeCrashed             decode_crash   decoding the bytes raised (a bug, counted)
    │   └── DamagedText               damaged        not a failure: the document is stored, but
    │                                                bytes were lost (replacement runs dropped)
    └── VisitError                    the visit as a whole ended without a page outcome
        ├── InternalError             internal       an unexpected exception (a bug costs one URL)
        ├── TimeLimitExceeded         time_limit     the worker's task time limit cut the visit
        ├── WorkerLost                worker_lost    the page killed its worker too many times
        ├── UnknownSource             unknown_source the visit names a source nobody knows
        └── OverBudget                over_budget    a page budget was spent; the URL waits queued

A fetch error raised on a redirect hop carries that hop's URL as ``final_url`` (the visit's
record names where the failure happened, not only the URL it started from).

Each error has a short machine-readable ``reason`` (the class attribute; stored in the URL table
and shown by the CLI) and a human message. Nothing outside this module invents a reason: the
records are built from these classes (:func:`crawler.records.failure_record`), so the embedded
crawl and the workers store the same vocabulary. :func:`known_reason` tells whether a stored
string is one of them.
"""

from __future__ import annotations

import re


class CrawlerError(Exception):
    """Base class of the crawler's own errors."""

    reason: str = "error"
    #: Whether trying the same URL again later can succeed.
    transient: bool = False

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(CrawlerError):
    reason = "config"


# -- fetching -------------------------------------------------------------------------------------


class FetchError(CrawlerError):
    reason = "fetch"

    def __init__(self, message: str, *, url: str | None = None, final_url: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        #: The redirect hop that failed, when it is not ``url`` itself.
        self.final_url = final_url


class TransientFetchError(FetchError):
    reason = "transient"
    transient = True


class FetchTimeout(TransientFetchError):
    reason = "timeout"


class ConnectionFailed(TransientFetchError):
    reason = "connection"


class ServerError(TransientFetchError):
    """HTTP 5xx or 429; ``reason`` is ``http_<status>``."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int,
        retry_after: float | None = None,
        final_url: str | None = None,
    ) -> None:
        super().__init__(message, url=url, final_url=final_url)
        self.status = status
        self.reason = f"http_{status}"
        self.retry_after = retry_after


class RobotsUnavailable(TransientFetchError):
    """robots.txt could not be read (5xx, timeout): the origin is off limits until it can."""

    reason = "robots_unavailable"


class HostBusy(TransientFetchError):
    """The host's turn (its delay and request slots) did not come within the tries allowed."""

    reason = "throttled"


class PermanentFetchError(FetchError):
    reason = "permanent"


class InvalidURL(PermanentFetchError):
    reason = "invalid_url"


class BlockedAddress(PermanentFetchError):
    reason = "blocked_address"


class DisallowedByRobots(PermanentFetchError):
    reason = "robots"


class HTTPStatusError(PermanentFetchError):
    """HTTP 4xx (not 429), or a status we cannot use; ``reason`` is ``http_<status>``."""

    def __init__(
        self, message: str, *, url: str | None = None, status: int, final_url: str | None = None
    ) -> None:
        super().__init__(message, url=url, final_url=final_url)
        self.status = status
        self.reason = f"http_{status}"


class TooManyRedirects(PermanentFetchError):
    reason = "redirects"


class RedirectLoop(TooManyRedirects):
    reason = "redirect_loop"


class RedirectOutOfScope(PermanentFetchError):
    """A redirect hop leads outside the source's scope (its hosts or patterns): not followed.

    Raised by the fetcher's per-hop hook (``Fetcher(hop_check=...)``); ``final_url`` is the hop.
    Recorded with the URL status ``out_of_scope``, like a link that was never in scope.
    """

    reason = "redirect_out_of_scope"


class NotHTML(PermanentFetchError):
    reason = "not_html"


class BadContentEncoding(NotHTML):
    reason = "bad_encoding"


class NotADocument(PermanentFetchError):
    """An attachment link answered with an HTML page (a login, error or viewer page), not a file."""

    reason = "not_document"


class BodyTooLarge(PermanentFetchError):
    reason = "too_large"


# -- extraction -----------------------------------------------------------------------------------


class ExtractionError(CrawlerError):
    reason = "extraction"


class EmptyExtraction(ExtractionError):
    reason = "empty"


class GarbledText(ExtractionError):
    reason = "garbled"


class ExtractionTimeout(ExtractionError):
    reason = "extract_timeout"


class ExtractionCrashed(ExtractionError):
    reason = "extract_crash"


class UnreadableAttachment(ExtractionError):
    """An attachment's file is corrupt, encrypted or not what its type says: no text from it."""

    reason = "unreadable_attachment"


class DecodeCrashed(ExtractionError):
    reason = "decode_crash"


class DamagedText(ExtractionError):
    """Never raised for a page: it names the note a stored page carries when replacement
    characters (U+FFFD, 锟斤拷) were dropped from its text (``PageOutcome.damaged``), so that
    stats and logs say it with the same vocabulary."""

    reason = "damaged"


# -- the visit as a whole -------------------------------------------------------------------------


class VisitError(CrawlerError):
    reason = "visit"


class InternalError(VisitError):
    """An unexpected exception during a visit: recorded transient, so a fixed bug gets the URL back."""

    reason = "internal"
    transient = True


class TimeLimitExceeded(VisitError):
    reason = "time_limit"
    transient = True


class WorkerLost(VisitError):
    reason = "worker_lost"


class UnknownSource(VisitError):
    reason = "unknown_source"


class OverBudget(VisitError):
    """A page budget was spent before this URL's turn: it stays queued for a later crawl."""

    reason = "over_budget"


def _all_reasons() -> frozenset[str]:
    found: set[str] = set()
    pending: list[type[CrawlerError]] = [CrawlerError]
    while pending:
        cls = pending.pop()
        found.add(cls.reason)
        pending.extend(cls.__subclasses__())
    return frozenset(found)


_HTTP_REASON = re.compile(r"^http_\d{3}$")


def known_reason(reason: str) -> bool:
    """Whether ``reason`` is one this module defines (``http_<status>`` included)."""
    return reason in _all_reasons() or bool(_HTTP_REASON.match(reason))
