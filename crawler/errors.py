"""Every error the pipeline raises on purpose, and whether retrying can help.

The tree::

    CrawlerError
    ├── ConfigError                   bad settings or a bad source file (names file, field, problem)
    ├── FetchError                    fetching a URL did not give us a usable HTML page
    │   ├── TransientFetchError       worth retrying later, with backoff
    │   │   ├── FetchTimeout          connect/read timeout or page deadline exceeded
    │   │   ├── ConnectionFailed      DNS failure, refused or reset connection
    │   │   └── ServerError           HTTP 5xx, or 429 (carries ``retry_after`` seconds if sent)
    │   └── PermanentFetchError       retrying will not help; recorded with its reason
    │       ├── InvalidURL            malformed, unsupported scheme, too long
    │       ├── BlockedAddress        resolves to a loopback/private/link-local/multicast address
    │       ├── DisallowedByRobots    robots.txt forbids the URL for our user agent
    │       ├── HTTPStatusError       HTTP 4xx other than 429
    │       ├── TooManyRedirects      redirect limit reached, or a redirect loop
    │       ├── NotHTML               the response is not an HTML document (PDF, image, ...)
    │       └── BodyTooLarge          body (after decompression) exceeds the cap
    └── ExtractionError               a fetched page gave no usable document
        ├── EmptyExtraction           no body text found
        ├── GarbledText               the text still looks like mojibake after decoding
        └── ExtractionTimeout         extraction ran past its time limit (a pathological page)

Each error has a short machine-readable ``reason`` (stored in the URL table and shown by the
CLI, e.g. ``http_404``, ``robots``, ``too_large``) and a human message.
"""

from __future__ import annotations


class CrawlerError(Exception):
    """Base class of the crawler's own errors."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(CrawlerError):
    reason = "config"


# -- fetching -------------------------------------------------------------------------------------


class FetchError(CrawlerError):
    reason = "fetch"
    transient = False

    def __init__(self, message: str, *, url: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.url = url


class TransientFetchError(FetchError):
    reason = "transient"
    transient = True


class FetchTimeout(TransientFetchError):
    reason = "timeout"


class ConnectionFailed(TransientFetchError):
    reason = "connection"


class ServerError(TransientFetchError):
    reason = "http_5xx"

    def __init__(
        self, message: str, *, url: str | None = None, status: int, retry_after: float | None = None
    ) -> None:
        super().__init__(message, url=url, reason=f"http_{status}")
        self.status = status
        self.retry_after = retry_after


class PermanentFetchError(FetchError):
    reason = "permanent"


class InvalidURL(PermanentFetchError):
    reason = "invalid_url"


class BlockedAddress(PermanentFetchError):
    reason = "blocked_address"


class DisallowedByRobots(PermanentFetchError):
    reason = "robots"


class HTTPStatusError(PermanentFetchError):
    def __init__(self, message: str, *, url: str | None = None, status: int) -> None:
        super().__init__(message, url=url, reason=f"http_{status}")
        self.status = status


class TooManyRedirects(PermanentFetchError):
    reason = "redirects"


class NotHTML(PermanentFetchError):
    reason = "not_html"


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
