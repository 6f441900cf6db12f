"""Serve a :class:`~crawler.samplesite.site.SampleWeb` on the loopback interface, one port per site.

Why ports and not names: a crawl needs several hosts, and ``127.0.0.1:PORT`` netlocs work on every
machine without DNS or extra loopback addresses. Each site gets its own threaded HTTP/1.1 server
(keep-alive, Content-Length), so per-host politeness, robots.txt and cross-site links are real.

Serving::

    web = build_site()
    with serve_site(web) as running:            # free ports; or serve_site(web, port_base=8801)
        running.base_urls["most"]               # "http://127.0.0.1:40123"
        running.url("most", "/kjbgz/")          # absolute URL of a path
        running.truth                           # {article URL: ArticlePage}: id, expected text, ...
        running.reachable_urls()                # article URLs reachable by links from the start pages
        running.disallowed_urls()               # URLs robots.txt forbids (linked, must never be fetched)
        running.source()                        # seeds/sample-site.toml with the real ports
        running.request_log                     # [(monotonic, netloc, method, path, status, user agent)]

Routes. A route is a :class:`Response` (static) or a handler ``Callable[[Request], Response]``.
Bodies and header values may contain ``site_url("other", "/path")`` placeholders: they become the
real ``http://127.0.0.1:PORT/path`` when served, because ports are only known at start.
Hostile behaviour for tests::

    hostile = web.add_site("hostile")                       # before serve_site
    web.add_route("hostile", "/slow", slow(5))              # sleeps before the status line
    web.add_route("hostile", "/drip", drip(interval=0.2))   # body trickled byte by byte
    web.add_route("hostile", "/boom", server_error())       # 500
    web.add_route("hostile", "/busy", too_many_requests(retry_after=3))
    web.add_route("hostile", "/flaky", fail_then(html("<p>ok</p>"), failures=2))
    web.add_route("hostile", "/moved", redirect(site_url("most", "/")))   # to another host
    web.add_routes("hostile", redirect_loop("/a", "/b"))    # /a -> /b -> /a ...
    web.add_route("hostile", "/big", oversized(10 * 2**20))
    web.add_route("hostile", "/bomb", gzip_bomb())          # Content-Encoding: gzip, ~100 MB inflated
    web.add_route("hostile", "/doc.html", pdf())            # a PDF where an HTML page was expected
    web.add_route("hostile", "/fake.html", pdf_as_html())   # PDF bytes labelled text/html
    web.add_route("hostile", "/broken.html", malformed_html())
    web.add_route("hostile", "/charset.html", wrong_meta_charset())   # GBK bytes, meta says utf-8
    web.add_route("hostile", "/missing", not_found())

Routes can also be added while serving (lookups are live); sites cannot.
``python -m crawler.samplesite`` serves the default web on the fixed ports of ``seeds/sample-site.toml``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from crawler.samplesite.content import ARTICLES, Article

if TYPE_CHECKING:
    from crawler.samplesite.site import ArticlePage, PageKey, SampleWeb
    from crawler.sources import Source

#: First port of the fixed layout used by ``python -m crawler.samplesite``, the demo and the seed.
DEFAULT_PORT_BASE = 8801

_PLACEHOLDER = re.compile(rb"@@SITE:([A-Za-z0-9_-]+)@@")


def site_url(site: str, path: str = "/") -> str:
    """An absolute link to ``path`` on ``site``; the placeholder is resolved when served."""
    return f"@@SITE:{site}@@{path}"


# -- requests and responses -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler sees: the site it was sent to, the raw target and lower-cased headers."""

    method: str
    site: str
    target: str  # path and query, as sent
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


Body = bytes | Callable[[], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Response:
    """A response to serve. A callable body is streamed (``length`` = declared Content-Length,
    None = no length, close-delimited); ``delay`` sleeps before the status line,
    ``chunk_size``/``chunk_delay`` trickle the body."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body = b""
    length: int | None = None
    delay: float = 0.0
    chunk_size: int = 0
    chunk_delay: float = 0.0


Handler = Callable[[Request], Response]
Route = Response | Handler


# -- ready-made routes ----------------------------------------------------------------------------


def html(
    body: str | bytes, *, status: int = 200, encoding: str = "utf-8", charset_header: bool = True
) -> Response:
    """An HTML page; ``charset_header=False`` leaves the charset out of Content-Type."""
    data = body.encode(encoding) if isinstance(body, str) else body
    ctype = f"text/html; charset={encoding}" if charset_header else "text/html"
    return Response(status, {"Content-Type": ctype}, data)


def redirect(location: str, status: int = 301) -> Response:
    """Redirect to a path on the same site, or to ``site_url(other, path)``."""
    return Response(status, {"Location": location, "Content-Type": "text/html"}, b"<a href='moved'>moved</a>")


def redirect_loop(*paths: str, status: int = 302) -> dict[str, Response]:
    """Routes where each path redirects to the next and the last to the first (one path: to itself)."""
    return {path: redirect(paths[(i + 1) % len(paths)], status) for i, path in enumerate(paths)}


def slow(seconds: float, response: Response | None = None) -> Response:
    """``response`` (a small page by default) after ``seconds`` without a byte sent."""
    base = response or html(_small_page("slow"))
    return Response(
        base.status, base.headers, base.body, base.length, seconds, base.chunk_size, base.chunk_delay
    )


def drip(body: bytes | None = None, *, interval: float = 0.1, declare_length: bool = True) -> Response:
    """A page whose body arrives one byte every ``interval`` seconds (headers are immediate)."""
    data = body if body is not None else _small_page("drip").encode()
    return Response(
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        lambda: [data],
        length=len(data) if declare_length else None,
        chunk_size=1,
        chunk_delay=interval,
    )


def server_error(status: int = 500) -> Response:
    return html(f"<html><body><h1>{status} Internal Server Error</h1></body></html>", status=status)


def too_many_requests(retry_after: float | str = 2) -> Response:
    """429 with a Retry-After header (seconds, or an HTTP date if given as a string)."""
    value = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    page = html("<html><body><h1>429 Too Many Requests</h1></body></html>", status=429)
    return Response(429, {**page.headers, "Retry-After": value}, page.body)


def not_found() -> Response:
    return html("<html><body><h1>404 Not Found</h1></body></html>", status=404)


def fail_then(response: Response, *, failures: int = 1, failure: Response | None = None) -> Handler:
    """A handler answering ``failure`` (429 by default) the first ``failures`` times, then ``response``."""
    bad = failure or too_many_requests(1)
    lock = threading.Lock()
    count = [0]

    def handle(request: Request) -> Response:
        with lock:
            count[0] += 1
            return bad if count[0] <= failures else response

    return handle


def oversized(size: int = 10 * 2**20, *, declare_length: bool = True) -> Response:
    """An HTML page of ``size`` bytes, streamed in 64 KiB chunks (Content-Length sent unless told not)."""

    def chunks() -> Iterator[bytes]:
        head = b"<!DOCTYPE html><html><body><p>"
        filler = ("大" * 21845).encode()  # 65,535 bytes of valid UTF-8
        yield head[:size]
        left = size - len(head)
        while left > 0:
            piece = filler[:left]
            left -= len(piece)
            yield piece

    return Response(
        200, {"Content-Type": "text/html; charset=utf-8"}, chunks, length=size if declare_length else None
    )


@cache
def _bomb_bytes(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    zeros = bytes(2**20)
    parts = [compressor.compress(zeros) for _ in range(size // len(zeros))]
    parts.append(compressor.compress(bytes(size % len(zeros))))
    parts.append(compressor.flush())
    return b"".join(parts)


def gzip_bomb(size: int = 100 * 2**20) -> Response:
    """``Content-Encoding: gzip``: about ``size / 1000`` bytes on the wire, ``size`` bytes inflated."""
    headers = {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}
    return Response(200, headers, _bomb_bytes(size))


def pdf_bytes(text: str = "Attachment") -> bytes:
    """A minimal valid one-page PDF (correct xref offsets) showing ``text`` (ASCII)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf(text: str = "Attachment") -> Response:
    """A PDF, correctly labelled ``application/pdf`` (what attachment links serve)."""
    return Response(200, {"Content-Type": "application/pdf"}, pdf_bytes(text))


def pdf_as_html() -> Response:
    """PDF bytes under a lying ``Content-Type: text/html``."""
    return Response(200, {"Content-Type": "text/html; charset=utf-8"}, pdf_bytes("Not HTML"))


def _small_page(name: str) -> str:
    return f"<!DOCTYPE html><html><head><title>{name}</title></head><body><p>{name}</p></body></html>"


def malformed_html(article: Article | None = None) -> Response:
    """An article page with broken markup: unclosed and misnested tags, stray end tags, a NUL byte,
    an unterminated comment-like sequence and attributes without quotes. The text is still there."""
    art = article or ARTICLES[0]
    paragraphs = "".join(f"<p><font color=red><b>{p}</font></b>\n" for p in art.paragraphs)
    page = (
        f"<html><head><title>{art.title}</title><meta charset=utf-8></head>"
        f"<body><div id=main><table><tr><td><h1>{art.title}</h1></div></td>"
        f"<div class=content>{paragraphs}</span></div></div></div>"
        "<p>\x00<!-- unterminated <script>var x = '</script>'</p></body>"
    )
    return html(page)


def wrong_meta_charset(article: Article | None = None) -> Response:
    """GBK bytes whose ``<meta charset>`` says utf-8, and no charset in the HTTP header."""
    art = article or ARTICLES[0]
    body = "".join(f"<p>{p}</p>" for p in art.paragraphs)
    page = (
        f'<html><head><meta charset="utf-8"><title>{art.title}</title></head>'
        f"<body><h1>{art.title}</h1>{body}</body></html>"
    )
    return html(page.encode("gbk"), charset_header=False)


# -- the server -----------------------------------------------------------------------------------


class LoggedRequest(NamedTuple):
    time: float  # time.monotonic() when the request arrived
    netloc: str
    method: str
    path: str  # path and query
    status: int
    user_agent: str


class RequestLog:
    """Thread-safe record of every request served; iterating gives a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[LoggedRequest] = []

    def append(self, item: LoggedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, index: int) -> LoggedRequest:
        with self._lock:
            return self._items[index]


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a crawl opens many connections at once; the default backlog is 5
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], running: RunningSite, site: str) -> None:
        self.running = running
        self.site = site
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # a client hung up on a keep-alive connection: routine for crawlers, not an error
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response has a length or closes
    timeout = 30  # drop idle keep-alive connections
    disable_nagle_algorithm = True  # small header and body writes would otherwise wait ~40 ms for ACKs
    server: _SiteServer

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def version_string(self) -> str:
        return self.server.running.web.sites[self.server.site].server

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the request log is the record; errors (log_error) still go to stderr

    def _handle(self) -> None:
        running, site = self.server.running, self.server.site
        arrived = time.monotonic()
        request = Request(self.command, site, self.path, {k.lower(): v for k, v in self.headers.items()})
        try:
            response = running.web.respond(request)
        except Exception as exc:  # a bug in a handler must not kill the server
            response = server_error()
            self.log_error("handler for %s failed: %r", self.path, exc)
        headers = {k: running.resolve_text(v) for k, v in response.headers.items()}
        status, body = response.status, response.body
        if isinstance(body, bytes):
            body = running.resolve(body)
            body, status = self._encode(request, headers, body, status)
        running.request_log.append(
            LoggedRequest(
                arrived,
                running.netlocs[site],
                self.command,
                self.path,
                status,
                request.headers.get("user-agent", ""),
            )
        )
        try:
            if response.delay:
                time.sleep(response.delay)
            self._send(status, headers, body, response)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client gave up (a timeout test, usually)

    def _encode(
        self, request: Request, headers: dict[str, str], body: bytes, status: int
    ) -> tuple[bytes, int]:
        """Compress for sites that do, add an ETag and answer If-None-Match with 304."""
        site = self.server.running.web.sites[request.site]
        ctype = headers.get("Content-Type", "")
        if (
            site.gzip
            and "gzip" in request.headers.get("accept-encoding", "")
            and "Content-Encoding" not in headers
            and len(body) > 512
            and (ctype.startswith("text/") or "xml" in ctype)
        ):
            body = gzip.compress(body, compresslevel=5, mtime=0)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        if status == 200:
            etag = '"' + hashlib.md5(body).hexdigest()[:16] + '"'
            headers["ETag"] = etag
            if request.headers.get("if-none-match") == etag:
                return b"", 304
        return body, status

    def _send(self, status: int, headers: dict[str, str], body: Body, response: Response) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        length = len(body) if isinstance(body, bytes) else response.length
        if status == 304:
            pass
        elif length is not None:
            self.send_header("Content-Length", str(length))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD" or status == 304:
            return
        pieces: Iterable[bytes] = [body] if isinstance(body, bytes) else body()
        for piece in pieces:
            step = response.chunk_size or len(piece) or 1
            for start in range(0, len(piece), step):
                if response.chunk_delay:
                    time.sleep(response.chunk_delay)
                self.wfile.write(piece[start : start + step])


class RunningSite:
    """A served :class:`SampleWeb`: its netlocs, URL-keyed ground truth and request log.

    A context manager; ``stop()`` shuts every server down. Create with :func:`serve_site`.
    """

    def __init__(self, web: SampleWeb, host: str = "127.0.0.1", port_base: int | None = None) -> None:
        self.web = web
        self.host = host
        self.request_log = RequestLog()
        self._servers: list[_SiteServer] = []
        self.netlocs: dict[str, str] = {}
        self._started = False
        try:
            for index, name in enumerate(web.sites):
                port = 0 if port_base is None else port_base + index
                try:
                    server = _SiteServer((host, port), self, name)
                except OSError as exc:
                    raise OSError(f"cannot serve sample site {name!r} on {host}:{port}: {exc}") from exc
                self._servers.append(server)
                self.netlocs[name] = f"{host}:{server.server_address[1]}"
        except BaseException:
            self.stop()
            raise
        self.base_urls = {name: f"http://{netloc}" for name, netloc in self.netlocs.items()}
        self._bases = {name.encode(): url.encode() for name, url in self.base_urls.items()}
        self._by_netloc = {netloc: name for name, netloc in self.netlocs.items()}
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            for s in self._servers
        ]
        for thread in self._threads:
            thread.start()
        self._started = True

    # -- placeholders and URLs

    def resolve(self, data: bytes) -> bytes:
        """Replace ``site_url`` placeholders with the real base URLs."""
        if b"@@SITE:" not in data:
            return data
        return _PLACEHOLDER.sub(lambda m: self._bases.get(m.group(1), m.group(0)), data)

    def resolve_text(self, text: str) -> str:
        return self.resolve(text.encode()).decode() if "@@SITE:" in text else text

    def url(self, site: str, path: str = "/") -> str:
        return self.base_urls[site] + path

    def key_of(self, url: str) -> PageKey:
        """The (site, path?query) of a URL of this web; KeyError for other hosts."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self._by_netloc[parts.netloc], target

    # -- ground truth as URLs

    @property
    def truth(self) -> dict[str, ArticlePage]:
        """Every article page by absolute URL: article id, variant, expected text and metadata."""
        return {self.url(*key): page for key, page in self.web.articles.items()}

    def start_urls(self) -> list[str]:
        return [self.url(*key) for key in self.web.start_pages()]

    def article_urls(self) -> set[str]:
        return {self.url(*key) for key in self.web.articles}

    def reachable_urls(self) -> set[str]:
        """Article pages a crawl from the start pages can reach by links (robots respected)."""
        return {self.url(*key) for key in self.web.reachable_articles()}

    def disallowed_urls(self) -> set[str]:
        return {self.url(*key) for key in self.web.disallowed}

    def broken_urls(self) -> set[str]:
        return {self.url(*key) for key in self.web.broken}

    def source(self, **overrides: Any) -> Source:
        """``seeds/sample-site.toml`` rewritten for the ports actually bound (plus ``overrides``)."""
        from crawler.sources import Source, load_source

        base = load_source(sample_seed_file())
        moved = {
            f"127.0.0.1:{DEFAULT_PORT_BASE + i}": self.netlocs[name]
            for i, name in enumerate(self.web.standard_sites)
        }

        def move(text: str) -> str:  # one pass: new ports may equal other sites' default ports
            return re.sub(r"127\.0\.0\.1:\d+", lambda m: moved.get(m.group(0), m.group(0)), text)

        data = base.model_dump()
        data["start_urls"] = [move(u) for u in base.start_urls]
        data["allowed_hosts"] = [move(h) for h in base.allowed_hosts]
        data["host_roles"] = {move(h): role for h, role in base.host_roles.items()}
        data.update(overrides)
        return Source.model_validate(data)

    # -- lifecycle

    def stop(self) -> None:
        """Stop every server (idempotent). Open keep-alive connections end with their threads."""
        servers, self._servers = self._servers, []
        if self._started:  # shut the servers down in parallel: each waits up to a poll interval
            stoppers = [threading.Thread(target=s.shutdown) for s in servers]
            for stopper in stoppers:
                stopper.start()
            for stopper in stoppers:
                stopper.join()
        for server in servers:
            server.server_close()

    def __enter__(self) -> RunningSite:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def sample_seed_file() -> Path:
    """``seeds/sample-site.toml``: the sample web's source, read as data. Located without
    importing the ``seeds`` package (which imports this library: no import circle)."""
    spec = importlib.util.find_spec("seeds")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the seeds package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "sample-site.toml"


def serve_site(web: SampleWeb, host: str = "127.0.0.1", *, port_base: int | None = None) -> RunningSite:
    """Start serving ``web``: free ports by default, or ``port_base``, ``port_base + 1``, ... in site
    order (the fixed layout of ``seeds/sample-site.toml`` when ``port_base=DEFAULT_PORT_BASE``)."""
    return RunningSite(web, host, port_base)
