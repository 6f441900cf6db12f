"""Fetch one HTML page (or, asked for, one document file): bounded in time and size, redirects
followed by hand, bytes kept raw.

The client is passed in (tests hand it a ``MockTransport`` or point it at a local server). We
follow redirects ourselves so that every hop is checked against robots.txt and the address
guard, a loop is detected, and the hop count is bounded. Bodies are read raw and decompressed
here with an output cap, so a gzip/deflate/brotli bomb stops at ``max_body_bytes`` without ever
being inflated in memory. Bytes are never decoded here: see :mod:`crawler.decode`.

Every result carries its :class:`Exchange`: the request headers sent and the response's status
line, headers and body as they came over the wire (before Content-Encoding is undone), which is
what the raw archive (:mod:`crawler.archive`) writes. For an uncompressed body that is the same
bytes object as the body, so keeping it costs nothing.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import brotli
import httpx

from crawler.errors import (
    BadContentEncoding,
    BodyTooLarge,
    ConnectionFailed,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    InvalidURL,
    NotADocument,
    NotHTML,
    RedirectLoop,
    ServerError,
    TooManyRedirects,
)
from crawler.netguard import GuardedTransport
from crawler.netpolicy import NetworkPolicy
from crawler.urls import canonicalize

HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
#: Sent for document files: the server should not be steered to a web page.
DOCUMENT_ACCEPT = "*/*"
# Sniffed only when the server sends no Content-Type at all.
_HTML_SNIFF = (b"<!doctype html", b"<html", b"<head", b"<body", b"<meta", b"<title")
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_RETRY_AFTER = 3600.0


@dataclass(slots=True, frozen=True)
class FetchLimits:
    """The bounds of one fetch. Built by :meth:`settings.Settings.fetch_limits` (every default
    lives in the settings)."""

    user_agent: str
    connect_timeout: float
    read_timeout: float
    page_deadline: float
    max_body_bytes: int
    max_redirects: int
    max_url_length: int
    max_attachment_bytes: int
    #: Which addresses may be contacted (``CRAWLER_ALLOWED_NETWORKS``): the default for every
    #: client, fetcher and robots cache built with these limits.
    network: NetworkPolicy


class Accept(StrEnum):
    """What a fetch takes: an HTML page (anything else is :class:`NotHTML`), or a document
    file such as a PDF attachment (an HTML page is then :class:`NotADocument`)."""

    HTML = "html"
    DOCUMENT = "document"


@dataclass(slots=True)
class Exchange:
    """One HTTP request and its response as they went over the wire, for the raw archive.

    ``raw_body`` is the body after transfer decoding (chunks joined) and before content decoding
    (still gzip/br when the server compressed it; ``response_headers`` say so).
    """

    url: str
    method: str
    request_headers: list[tuple[str, str]]
    http_version: str
    status: int
    reason: str
    response_headers: list[tuple[str, str]]
    raw_body: bytes


@dataclass(slots=True)
class FetchResult:
    url: str
    final_url: str
    status: int
    content_type: str
    charset: str | None
    body: bytes
    redirects: list[str] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    elapsed: float = 0.0
    #: The final request and response as sent and received (None for a redirect not followed).
    exchange: Exchange | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def is_redirect(self) -> bool:
        """A redirect that was not followed (its target was claimed elsewhere)."""
        return 300 <= self.status < 400 and self.status != 304


class RobotsCheck(Protocol):
    async def __call__(self, url: str) -> None:
        """Raise DisallowedByRobots if ``url`` may not be fetched."""


#: A per-hop hook: called with each redirect target before it is followed; raises (e.g.
#: :class:`~crawler.errors.RedirectOutOfScope`) to refuse the hop. May be a coroutine function.
HopCheck = Callable[[str], Awaitable[None] | None]


class PerOriginTransport(httpx.AsyncBaseTransport):
    """One small connection pool per origin (scheme, host, port) instead of one large pool.

    httpcore's pool scans every connection it holds, and checks each one's socket, whenever it
    assigns a request; with dozens of connections over a few hosts that scan was a fifth of the
    crawl loop's CPU (measured). A crawler's requests to one origin are few at a time (the
    per-host concurrency), so per-origin pools keep every scan short. Origins past
    ``max_origins`` share one overflow pool, so a crawl of many hosts holds bounded resources.
    """

    def __init__(
        self, factory: Callable[[int], httpx.AsyncBaseTransport], *, per_origin: int, max_origins: int = 512
    ) -> None:
        self._factory = factory
        self._per_origin = per_origin
        self._max_origins = max_origins
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncBaseTransport] = {}
        self._overflow: httpx.AsyncBaseTransport | None = None

    def _pool_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        if len(self._pools) < self._max_origins:
            pool = self._pools[key] = self._factory(self._per_origin)
            return pool
        if self._overflow is None:
            self._overflow = self._factory(max(self._per_origin, 100))
        return self._overflow

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool_for(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        pools = [*self._pools.values(), *([self._overflow] if self._overflow is not None else [])]
        self._pools.clear()
        self._overflow = None
        for pool in pools:
            await pool.aclose()


def make_client(
    limits: FetchLimits,
    *,
    policy: NetworkPolicy | None = None,
    max_connections: int = 100,
    per_origin_connections: int | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient configured for crawling, every connection checked against a network policy.

    ``policy``: which addresses may be contacted (default ``limits.network``).
    ``per_origin_connections``: give every origin its own pool of that many connections
    (:class:`PerOriginTransport`) instead of one pool of ``max_connections``.
    """
    chosen_policy = limits.network if policy is None else policy

    # One TLS context for every origin's pool: building one loads the CA bundle (~18 ms), and a
    # crawl of many hosts makes a pool per host.
    tls = httpx.create_ssl_context(trust_env=False)

    def transport(size: int) -> httpx.AsyncBaseTransport:
        pool = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        return GuardedTransport(policy=chosen_policy, limits=pool, verify=tls, trust_env=False)

    chosen = (
        transport(max_connections)
        if per_origin_connections is None
        else PerOriginTransport(transport, per_origin=per_origin_connections)
    )
    return httpx.AsyncClient(
        transport=chosen,
        timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout),
        headers={
            "User-Agent": limits.user_agent,
            "Accept": HTML_ACCEPT,
            "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5",
            "Accept-Encoding": "gzip, deflate, br",
        },
        follow_redirects=False,
        trust_env=False,
    )


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """``text/html; charset=GBK`` -> ("text/html", "gbk")."""
    if not value:
        return "", None
    mime, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.strip().partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip("'\"").lower() or None
    return mime.strip().lower(), charset


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), bounded."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), _MAX_RETRY_AFTER)


class _Decoder(Protocol):
    def feed(self, data: bytes, limit: int) -> bytes: ...


class _Identity:
    def feed(self, data: bytes, limit: int) -> bytes:
        return data


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._obj = zlib.decompressobj(wbits)

    def feed(self, data: bytes, limit: int) -> bytes:
        # max_length bounds what one call may inflate: a bomb never gets past the cap.
        out = self._obj.decompress(self._obj.unconsumed_tail + data, limit)
        return out


class _Deflate(_Zlib):
    """'deflate' is zlib-wrapped by the RFC and raw by many servers; accept both."""

    def __init__(self) -> None:
        super().__init__(zlib.MAX_WBITS)
        self._raw_checked = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if not self._raw_checked:
            self._raw_checked = True
            try:
                return super().feed(data, limit)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        return super().feed(data, limit)


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes, limit: int) -> bytes:
        out = self._obj.process(data, output_buffer_limit=limit)
        return bytes(out)


def _decoder_for(encoding: str | None, url: str) -> _Decoder:
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _Deflate()
    if encoding == "br":
        return _Brotli()
    raise BadContentEncoding(f"unsupported Content-Encoding {encoding!r}", url=url)


async def _read_body(response: httpx.Response, url: str, cap: int) -> tuple[bytes, bytes]:
    """The decoded body and the raw one (the same object when the body was not compressed)."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise BodyTooLarge(f"Content-Length {declared} exceeds the {cap}-byte cap", url=url)
    decoder = _decoder_for(response.headers.get("content-encoding"), url)
    identity = isinstance(decoder, _Identity)
    chunks: list[bytes] = []
    raws: list[bytes] = []
    size = 0
    try:
        async for raw in response.aiter_raw():
            # Ask for one byte more than the room left: getting it proves the cap is exceeded.
            out = decoder.feed(raw, cap - size + 1)
            size += len(out)
            if size > cap:
                raise BodyTooLarge(f"body exceeds the {cap}-byte cap (after decompression)", url=url)
            chunks.append(out)
            if not identity:
                raws.append(raw)
    except (zlib.error, brotli.error) as exc:
        raise BadContentEncoding(f"corrupt compressed body: {exc}", url=url) from exc
    body = b"".join(chunks)
    return body, (body if identity else b"".join(raws))


def _exchange(response: httpx.Response, raw_body: bytes) -> Exchange:
    request = response.request
    return Exchange(
        url=str(request.url),
        method=request.method,
        request_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
        http_version=response.http_version,
        status=response.status_code,
        reason=response.reason_phrase,
        response_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw],
        raw_body=raw_body,
    )


_DRAIN_LIMIT = 64 * 1024


async def _drain(response: httpx.Response) -> None:
    """Read a small redirect/error body so its connection goes back to the pool; a large or
    unsized one is not worth reading (the connection is closed instead)."""
    length = response.headers.get("content-length")
    if length and length.isdigit() and int(length) <= _DRAIN_LIMIT:
        try:
            async for _ in response.aiter_raw():
                pass
        except httpx.HTTPError:
            pass  # the status is what matters; a broken error body changes nothing


def _is_conditional(headers: dict[str, str]) -> bool:
    return any(name.lower() in ("if-none-match", "if-modified-since") for name in headers)


def _looks_like_html(start: bytes) -> bool:
    head = start[:1024].lstrip().lower()
    return any(marker in head for marker in _HTML_SNIFF)


#: Leading bytes of the document files attachments are (PDF, OLE2 .doc/.xls/.wps, ZIP-based
#: .docx/.xlsx/.ofd/.zip, RAR): a server that labels one text/html is wrong about the label.
_DOCUMENT_MAGIC = (b"%PDF-", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"PK\x03\x04", b"Rar!\x1a\x07")


def looks_like_document(start: bytes) -> bool:
    """Whether bytes start like a document file (see :data:`_DOCUMENT_MAGIC`)."""
    head = start[:1024].lstrip()
    return head.startswith(_DOCUMENT_MAGIC)


class Fetcher:
    """Fetches pages with one client, checking robots.txt, the network policy and an optional
    per-hop hook on every redirect hop."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        limits: FetchLimits,
        *,
        robots: RobotsCheck | Callable[[str], Awaitable[None]] | None = None,
        policy: NetworkPolicy | None = None,
        hop_check: HopCheck | None = None,
    ) -> None:
        """``policy`` (default ``limits.network``) is checked here on IP-literal hosts, before
        the client is asked; names are checked at connection time by the client that
        :func:`make_client` builds with the same policy.

        ``hop_check(target)`` is called for every redirect target before it is followed (after
        the loop and hop-count checks); whatever it raises ends the fetch, with the hop's URL as
        the error's ``final_url``."""
        self.client = client
        self.limits = limits
        self.robots = robots
        self.policy = limits.network if policy is None else policy
        self.hop_check = hop_check

    async def fetch(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        claim: Callable[[str], bool] | None = None,
        accept: Accept = Accept.HTML,
        max_bytes: int | None = None,
    ) -> FetchResult:
        """Fetch ``url`` (already canonical or not) and return its raw HTML bytes.

        ``claim(target)`` is asked before following a redirect; when it returns False (the
        target is already queued or fetched elsewhere) the redirect is not followed and the
        result is the redirect itself (``is_redirect``, empty body, ``final_url`` = target).
        ``accept=Accept.DOCUMENT`` fetches a document file instead (any type but an HTML page,
        ``Accept: */*``), capped at ``max_bytes`` (default ``limits.max_attachment_bytes``).
        Raises a :class:`~crawler.errors.FetchError` subclass for every failure; one raised on
        a redirect hop carries that hop's URL as ``final_url`` (the page that failed).
        """
        started = time.monotonic()
        headers = dict(headers or {})
        if accept is Accept.DOCUMENT:
            headers.setdefault("Accept", DOCUMENT_ACCEPT)
            cap = self.limits.max_attachment_bytes if max_bytes is None else max_bytes
        else:
            cap = self.limits.max_body_bytes if max_bytes is None else max_bytes
        try:
            async with asyncio.timeout(self.limits.page_deadline):
                result = await self._fetch_chain(url, headers, claim, accept, cap)
        except TimeoutError as exc:
            raise FetchTimeout(f"page took longer than {self.limits.page_deadline:g} s", url=url) from exc
        result.elapsed = time.monotonic() - started
        return result

    async def _fetch_chain(
        self,
        url: str,
        headers: dict[str, str],
        claim: Callable[[str], bool] | None,
        accept: Accept = Accept.HTML,
        cap: int | None = None,
    ) -> FetchResult:
        current = canonicalize(url, max_length=self.limits.max_url_length)
        seen = {current}
        redirects: list[str] = []
        while True:
            try:
                if self.robots is not None:
                    await self.robots(current)
                outcome = await self._fetch_once(current, headers, accept, cap)
            except FetchError as exc:
                if redirects and exc.final_url is None:
                    exc.final_url = current  # a hop failed: name it, not only the first URL
                raise
            if isinstance(outcome, FetchResult):
                outcome.url = url
                outcome.redirects = redirects
                return outcome
            status, location = outcome
            try:
                target = canonicalize(location, max_length=self.limits.max_url_length)
            except InvalidURL as exc:
                raise InvalidURL(
                    f"redirect from {current} to an invalid URL: {exc}", url=url, final_url=current
                ) from exc
            redirects.append(current)
            if target in seen:
                raise RedirectLoop(f"redirect loop: {current} -> {target}", url=url, final_url=target)
            if len(redirects) > self.limits.max_redirects:
                raise TooManyRedirects(
                    f"more than {self.limits.max_redirects} redirects", url=url, final_url=target
                )
            await self._check_hop(url, target)
            if claim is not None and not claim(target):
                return FetchResult(url, target, status, "", None, b"", redirects=redirects)
            seen.add(target)
            current = target

    async def _check_hop(self, url: str, target: str) -> None:
        """The address policy's and the hook's verdicts on a redirect target; their errors name
        the hop as ``final_url``. An address the policy refuses is named as such first, whatever
        the hook thinks of the host (a redirect to the metadata address is blocked, not merely
        out of scope)."""
        try:
            self.policy.check_literal_host(httpx.URL(target).host)
            if self.hop_check is None:
                return
            pending = self.hop_check(target)
            if pending is not None:
                await pending
        except FetchError as exc:
            exc.url = exc.url or url
            exc.final_url = exc.final_url or target
            raise

    async def _fetch_once(
        self, url: str, headers: dict[str, str], accept: Accept = Accept.HTML, cap: int | None = None
    ) -> FetchResult | tuple[int, str]:
        """One request: a result, or a redirect's (status, absolute target URL)."""
        self.policy.check_literal_host(httpx.URL(url).host)
        try:
            async with self.client.stream("GET", url, headers=headers) as response:
                return await self._handle(
                    url,
                    response,
                    conditional=_is_conditional(headers),
                    accept=accept,
                    cap=self.limits.max_body_bytes if cap is None else cap,
                )
        except FetchError:
            raise
        except httpx.TimeoutException as exc:
            raise FetchTimeout(f"timed out: {type(exc).__name__}", url=url) from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise InvalidURL(f"invalid URL: {exc}", url=url) from exc
        except (httpx.TransportError, OSError) as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc or 'connection failed'}", url=url) from exc

    async def _handle(
        self,
        url: str,
        response: httpx.Response,
        *,
        conditional: bool,
        accept: Accept = Accept.HTML,
        cap: int,
    ) -> FetchResult | tuple[int, str]:
        status = response.status_code
        if status in _REDIRECT_STATUSES or status >= 400 or status == 304:
            await _drain(response)
        if status in _REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                raise HTTPStatusError(f"HTTP {status} without a Location header", url=url, status=status)
            return status, str(response.url.join(location))
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise ServerError(f"HTTP {status}", url=url, status=status, retry_after=retry_after)
        mime, charset = parse_content_type(response.headers.get("content-type"))
        etag = response.headers.get("etag")
        last_modified = response.headers.get("last-modified")
        if status == 304:
            if not conditional:  # "not modified" since when? We sent no validator.
                raise HTTPStatusError("HTTP 304 to a request that was not conditional", url=url, status=304)
            return FetchResult(url, url, status, mime, charset, b"", etag=etag, last_modified=last_modified)
        if status >= 400 or status < 200 or status in (204, 205):
            raise HTTPStatusError(f"HTTP {status}", url=url, status=status)
        if accept is Accept.DOCUMENT:
            body, raw = await _read_body(response, url, cap)
            # a page labelled HTML (or unlabelled and looking like one) that is not a mislabelled file
            page = mime in HTML_CONTENT_TYPES or (not mime and _looks_like_html(body))
            if page and not looks_like_document(body):
                raise NotADocument(f"an HTML page ({mime or 'sniffed'}), not a document file", url=url)
            return FetchResult(
                url,
                url,
                status,
                mime or "application/octet-stream",
                charset,
                body,
                etag=etag,
                last_modified=last_modified,
                exchange=_exchange(response, raw),
            )
        if mime and mime not in HTML_CONTENT_TYPES:
            raise NotHTML(f"content type {mime!r} is not HTML", url=url)
        body, raw = await _read_body(response, url, cap)
        if not mime and not _looks_like_html(body):
            raise NotHTML("no Content-Type and the body does not look like HTML", url=url)
        return FetchResult(
            url,
            url,
            status,
            mime or "text/html",
            charset,
            body,
            etag=etag,
            last_modified=last_modified,
            exchange=_exchange(response, raw),
        )
