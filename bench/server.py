"""A fast static HTTP/1.1 server for the bench web: pre-rendered bytes, asyncio protocols, one process.

Why not :func:`crawler.samplesite.serve_site`: it renders every page on request and runs one
``ThreadingHTTPServer`` per site (a thread per connection, header parsing in Python's
``http.server``), which costs more CPU per request than the crawler under test on a 2-core machine.
Here every response is rendered once (:mod:`bench.web`), and a request costs one ``find`` for
the end of its head, a dict lookup and one ``transport.write``: keep-alive, pipelining-safe,
gzip variants for the gzip sites when asked for. Its CPU time is measured by the bench and
reported next to every run (``/proc/<pid>/stat``).

Run as ``python -m bench.server --scale 90``: it binds one port per site on 127.0.0.1 plus a
control port, renders the web, and prints one JSON line (ports, page counts, sizes) when ready.
The control port answers ``GET /stats`` (request counters since the last reset, JSON) and
``GET /reset``. ``--dump FILE`` pickles the article pages (URL, bytes, charset, decoded text)
for the limit runs.
It serves at most ``--max-requests`` requests in all (then closes connections) and exits on
SIGTERM/SIGINT or when its standard input closes (the bench died).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.web import RenderedSite, RenderedWeb, Wire, render_web

_MAX_HEAD = 16_384  # bytes of request head before we give up on a client


class Counters:
    """What was served since the last reset; read through the control port."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.by_status: Counter[int] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.html_ok = 0  # 200 responses with an HTML body (pages a crawler parses)
        self.articles: Counter[str] = Counter()  # article URL -> times served
        self.first: float | None = None
        self.last: float | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bytes": self.bytes,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_kind": dict(self.by_kind),
            "html_ok": self.html_ok,
            "articles_unique": len(self.articles),
            "article_fetches": sum(self.articles.values()),
            "first": self.first,
            "last": self.last,
        }


class _Page(asyncio.Protocol):
    """One client connection to one site."""

    def __init__(self, server: StaticServer, site: RenderedSite) -> None:
        self.server = server
        self.site = site
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        start = 0
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end < 0:
                break
            keep = self._respond(buffer[start:end])
            start = end + 4
            if not keep:
                assert self.transport is not None
                self.transport.close()
                self.buffer = b""
                return
        self.buffer = buffer[start:]
        if len(self.buffer) > _MAX_HEAD:
            assert self.transport is not None
            self.transport.close()

    def _respond(self, head: bytes) -> bool:
        """Write the response to one request head; False when the connection must close."""
        server = self.server
        transport = self.transport
        assert transport is not None
        line_end = head.find(b"\r\n")
        request_line = head if line_end < 0 else head[:line_end]
        parts = request_line.split(b" ")
        if len(parts) != 3 or server.budget <= 0:
            transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        method, raw_target, version = parts
        server.budget -= 1
        target = raw_target.decode("latin-1")
        if target.startswith("http://"):  # absolute-form (proxies); take the path
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        wire = self.site.lookup(target)
        lower = head.lower()
        gz = wire.gz_body is not None and b"gzip" in _header(lower, b"accept-encoding")
        body = wire.gz_body if gz else wire.body
        head_bytes = wire.gz_head if gz else wire.head
        assert body is not None and head_bytes is not None
        if method == b"HEAD":
            transport.write(head_bytes)
        else:
            transport.write(head_bytes + body)
        _count(server.counters, self.site, target, wire, len(body))
        connection = _header(lower, b"connection")
        return not (b"close" in connection or (version == b"HTTP/1.0" and b"keep-alive" not in connection))


def _header(lower_head: bytes, name: bytes) -> bytes:
    """The value of a header in a lower-cased request head (b"" when absent)."""
    at = lower_head.find(b"\r\n" + name + b":")
    if at < 0:
        return b""
    start = at + len(name) + 3
    end = lower_head.find(b"\r\n", start)
    return lower_head[start : end if end >= 0 else len(lower_head)]


def _count(counters: Counters, site: RenderedSite, target: str, wire: Wire, size: int) -> None:
    now = time.monotonic()
    if counters.first is None:
        counters.first = now
    counters.last = now
    counters.requests += 1
    counters.bytes += size
    counters.by_status[wire.status] += 1
    counters.by_kind[wire.kind] += 1
    if wire.status == 200 and wire.html:
        counters.html_ok += 1
        if wire.kind == "article":
            counters.articles[f"{site.name}{target.partition('#')[0]}"] += 1


class _Control(asyncio.Protocol):
    """``GET /stats`` and ``GET /reset`` for the bench (one request per connection)."""

    def __init__(self, server: StaticServer) -> None:
        self.server = server
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        target = self.buffer.split(b" ", 2)[1] if self.buffer.count(b" ") >= 2 else b"/"
        counters = self.server.counters
        if target == b"/reset":
            counters.reset()
            payload: dict[str, Any] = {"ok": True}
        else:
            payload = counters.snapshot()
            payload["budget_left"] = self.server.budget
        body = json.dumps(payload).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.transport.close()


def _charset(head: bytes) -> str | None:
    """The charset of a pre-rendered response's Content-Type header, as a crawler would see it."""
    value = _header(head.lower(), b"content-type").decode("latin-1")
    _, _, charset = value.partition("charset=")
    return charset.strip() or None


class StaticServer:
    """Owns the listening sockets, the rendered web and the counters."""

    def __init__(self, max_requests: int) -> None:
        self.counters = Counters()
        self.budget = max_requests
        self.web: RenderedWeb | None = None


def _factory(server: StaticServer, holders: dict[str, RenderedSite], name: str) -> Callable[[], _Page]:
    return lambda: _Page(server, holders[name])


async def serve(args: argparse.Namespace) -> None:
    from crawler.samplesite import build_site

    loop = asyncio.get_running_loop()
    web = build_site(args.scale, crawl_delay=args.crawl_delay)
    server = StaticServer(args.max_requests)
    holders: dict[str, RenderedSite] = {}
    listeners = []
    netlocs: dict[str, str] = {}
    for name in web.sites:
        # The protocol factory reads the site lazily: ports must be known before rendering
        # (pages carry absolute cross-site links), and nobody connects before the ready line.
        listener = await loop.create_server(
            _factory(server, holders, name), "127.0.0.1", 0, backlog=1024, reuse_address=True
        )
        listeners.append(listener)
        netlocs[name] = f"127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    control = await loop.create_server(lambda: _Control(server), "127.0.0.1", 0)
    started = time.monotonic()
    rendered = render_web(web, netlocs, pad=not args.no_pad)
    holders.update(rendered.sites)
    server.web = rendered
    articles = rendered.articles()
    sizes = [wire.size for _, _, wire in articles]
    if args.dump:
        texts = [
            {
                "url": f"http://{netlocs[site]}{target}",
                "text": wire.body.decode(rendered.sites[site].encoding, "replace"),
                "body": wire.body,
                "charset": _charset(wire.head),
            }
            for site, target, wire in articles
        ]
        with open(args.dump, "wb") as handle:
            pickle.dump(texts, handle, protocol=pickle.HIGHEST_PROTOCOL)
    ready = {
        "pid": os.getpid(),
        "scale": args.scale,
        "control": control.sockets[0].getsockname()[1],
        "netlocs": netlocs,
        "standard_sites": list(web.standard_sites),
        "required_depth": web.required_depth(),
        "routes": sum(len(s.routes) for s in rendered.sites.values()),
        "articles": len(articles),
        "reachable_articles": len(web.reachable_articles()),
        "article_bytes": {
            "median": statistics.median(sizes) if sizes else 0,
            "mean": round(statistics.fmean(sizes)) if sizes else 0,
            "min": min(sizes, default=0),
            "max": max(sizes, default=0),
        },
        "render_seconds": round(time.monotonic() - started, 2),
    }
    print(json.dumps(ready), flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Standard input closes when the bench that started us exits, however it exits.
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    await stop.wait()
    for listener in [*listeners, control]:
        listener.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=90, help="build_site scale (90: ~2,000 articles)")
    parser.add_argument("--crawl-delay", type=float, default=0.0, help="robots.txt Crawl-delay of haixi")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="requests served in all")
    parser.add_argument("--dump", metavar="FILE", help="pickle the article pages for the limit runs")
    parser.add_argument("--no-pad", action="store_true", help="serve the sample pages without added chrome")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
