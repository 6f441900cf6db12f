"""Fetcher behaviour against a MockTransport (status mapping, redirects, caps, bombs) and the
address guard against a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Callable

import brotli
import httpx
import pytest

from crawler.errors import (
    BlockedAddress,
    BodyTooLarge,
    ConnectionFailed,
    DisallowedByRobots,
    FetchTimeout,
    HTTPStatusError,
    InvalidURL,
    NotHTML,
    ServerError,
    TooManyRedirects,
)
from crawler.fetch import Fetcher, make_client, parse_content_type, parse_retry_after
from tests.crawling import fetch_limits

HTML = "<html><head><meta charset=gbk><title>t</title></head><body><p>科技部</p></body></html>".encode("gbk")
LIMITS = fetch_limits(max_body_bytes=100_000, max_redirects=3, page_deadline=5.0, read_timeout=2.0)

Handler = Callable[[httpx.Request], httpx.Response]


def fetch(handler: Handler, url: str = "http://site.test/a", **kwargs: object) -> object:
    async def go() -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            fetcher = Fetcher(client, LIMITS, **kwargs)  # type: ignore[arg-type]
            return await fetcher.fetch(url)

    return asyncio.run(go())


class Chunks(httpx.AsyncByteStream):
    """A body streamed in chunks, as a real transport delivers it (bytes content would be preloaded)."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for chunk in self.chunks:
            yield chunk


def streamed(data: bytes, size: int = 16_384) -> Chunks:
    return Chunks(*(data[i : i + size] for i in range(0, len(data), size)))


def html(status: int = 200, body: bytes = HTML, **headers: str) -> httpx.Response:
    headers = {"content-type": "text/html", "content-length": str(len(body)), **headers}
    return httpx.Response(status, stream=streamed(body), headers=headers)


def test_body_is_returned_as_raw_bytes_with_header_charset() -> None:
    result = fetch(lambda r: html(**{"content-type": "text/html; charset=GBK"}))
    assert result.body == HTML  # type: ignore[attr-defined]
    assert result.charset == "gbk"  # type: ignore[attr-defined]
    assert result.final_url == "http://site.test/a"  # type: ignore[attr-defined]


def test_redirects_are_followed_and_recorded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a":
            return httpx.Response(301, headers={"location": "/b?utm_source=x"})
        if request.url.path == "/b":
            return httpx.Response(302, headers={"location": "http://site.test/c"})
        return html()

    result = fetch(handler)
    assert result.final_url == "http://site.test/c"  # type: ignore[attr-defined]
    assert result.redirects == ["http://site.test/a", "http://site.test/b"]  # type: ignore[attr-defined]


def test_redirect_loop_and_limit() -> None:
    loop = {"/a": "/b", "/b": "/a"}
    with pytest.raises(TooManyRedirects, match="loop") as info:
        fetch(lambda r: httpx.Response(302, headers={"location": loop[r.url.path]}))
    assert info.value.reason == "redirect_loop"

    def chain(request: httpx.Request) -> httpx.Response:
        n = int(request.url.path.strip("/") or 0)
        return httpx.Response(302, headers={"location": f"/{n + 1}"})

    with pytest.raises(TooManyRedirects, match="more than 3"):
        fetch(chain, "http://site.test/0")


def test_redirect_to_claimed_url_is_not_followed() -> None:
    seen = {"http://site.test/b"}

    async def go() -> object:
        transport = httpx.MockTransport(
            lambda r: httpx.Response(302, headers={"location": "/b"}) if r.url.path == "/a" else html()
        )
        async with httpx.AsyncClient(transport=transport) as client:
            fetcher = Fetcher(client, LIMITS)
            return await fetcher.fetch("http://site.test/a", claim=lambda u: u not in seen)

    result = asyncio.run(go())
    assert result.is_redirect and result.final_url == "http://site.test/b" and result.body == b""  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (404, HTTPStatusError, "http_404"),
        (410, HTTPStatusError, "http_410"),
        (500, ServerError, "http_500"),
        (503, ServerError, "http_503"),
        (429, ServerError, "http_429"),
    ],
)
def test_status_codes_map_to_the_error_tree(status: int, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as info:
        fetch(lambda r: html(status))
    assert info.value.reason == reason  # type: ignore[attr-defined]
    assert info.value.transient is (status >= 500 or status == 429)  # type: ignore[attr-defined]


def test_retry_after_is_parsed() -> None:
    with pytest.raises(ServerError) as info:
        fetch(lambda r: html(429, **{"retry-after": "7"}))
    assert info.value.retry_after == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("999999") == 3600.0


def test_non_html_is_refused_without_reading_the_body() -> None:
    with pytest.raises(NotHTML, match="application/pdf"):
        fetch(lambda r: httpx.Response(200, content=b"%PDF-1.4", headers={"content-type": "application/pdf"}))


def test_missing_content_type_is_sniffed() -> None:
    assert fetch(lambda r: httpx.Response(200, stream=streamed(HTML))).body == HTML  # type: ignore[attr-defined]
    with pytest.raises(NotHTML):
        fetch(lambda r: httpx.Response(200, stream=streamed(b"\x89PNG\r\n\x1a\n....")))


def test_declared_and_streamed_size_caps() -> None:
    big = b"<html>" + b"x" * 200_000
    with pytest.raises(BodyTooLarge, match="Content-Length"):
        fetch(lambda r: html(body=big))

    def no_length(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"}, stream=Chunks(*[big[:50_000]] * 4))

    with pytest.raises(BodyTooLarge):
        fetch(no_length)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),
        ("br", brotli.compress),
    ],
)
def test_compressed_bodies_are_decoded_and_bombs_stop_at_the_cap(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    assert fetch(lambda r: html(body=compress(HTML), **{"content-encoding": encoding})).body == HTML  # type: ignore[attr-defined]
    bomb = compress(b"<html>" + b"\0" * 50_000_000)
    assert len(bomb) < 200_000
    with pytest.raises(BodyTooLarge, match="decompression"):
        fetch(lambda r: html(body=bomb, **{"content-encoding": encoding}))


def test_corrupt_compression_is_a_clear_error() -> None:
    with pytest.raises(NotHTML, match="corrupt"):
        fetch(lambda r: html(body=b"not gzip at all", **{"content-encoding": "gzip"}))


def test_transport_errors_map_to_transient_errors() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(FetchTimeout):
        fetch(timeout)
    with pytest.raises(ConnectionFailed):
        fetch(refused)


def test_invalid_url_is_refused_before_any_request() -> None:
    calls: list[httpx.Request] = []
    with pytest.raises(InvalidURL):
        fetch(lambda r: calls.append(r) or html(), "ftp://site.test/a")  # type: ignore[func-returns-value]
    assert calls == []


def test_robots_check_runs_on_every_hop() -> None:
    checked: list[str] = []

    async def robots(url: str) -> None:
        checked.append(url)
        if "/private/" in url:
            raise DisallowedByRobots("no", url=url)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "/private/x"}) if request.url.path == "/a" else html()

    with pytest.raises(DisallowedByRobots):
        fetch(handler, robots=robots)
    assert checked == ["http://site.test/a", "http://site.test/private/x"]


def test_user_agent_and_accept_headers(unused_port_server: tuple[str, list[dict[str, str]]]) -> None:
    base, requests = unused_port_server
    limits = fetch_limits(user_agent="policy-crawler/9 (+test)")

    async def go() -> None:
        async with make_client(limits) as client:
            await Fetcher(client, limits).fetch(base + "/page")

    asyncio.run(go())
    assert requests[0]["user-agent"] == "policy-crawler/9 (+test)"
    assert "gzip" in requests[0]["accept-encoding"]


def test_guard_blocks_loopback_by_name_and_literal(
    unused_port_server: tuple[str, list[dict[str, str]]],
) -> None:
    base, requests = unused_port_server
    port = base.rsplit(":", 1)[1]

    strict = fetch_limits(allowed_networks=[])  # the default policy: public addresses only

    async def go(url: str) -> None:
        async with make_client(strict) as client:
            await Fetcher(client, strict).fetch(url)

    for url in (
        f"http://127.0.0.1:{port}/x",
        f"http://localhost:{port}/x",
        f"http://[::ffff:127.0.0.1]:{port}/x",
    ):
        with pytest.raises(BlockedAddress):
            asyncio.run(go(url))
    assert requests == []  # nothing ever reached the server


def test_slow_server_hits_the_page_deadline(slow_server: str) -> None:
    limits = fetch_limits(user_agent="t", page_deadline=0.5, read_timeout=5.0)

    async def go() -> None:
        async with make_client(limits) as client:
            await Fetcher(client, limits).fetch(slow_server)

    with pytest.raises(FetchTimeout):
        asyncio.run(go())


def test_content_type_parsing() -> None:
    assert parse_content_type("text/html; charset=GB2312") == ("text/html", "gb2312")
    assert parse_content_type('text/html;charset="utf-8"') == ("text/html", "utf-8")
    assert parse_content_type(None) == ("", None)


def test_per_origin_transport_keeps_one_pool_per_origin_and_bounds_them() -> None:
    from crawler.fetch import PerOriginTransport

    made: list[tuple[int, list[str]]] = []

    def factory(size: int) -> httpx.AsyncBaseTransport:
        seen: list[str] = []
        made.append((size, seen))

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(str(request.url))
            return httpx.Response(200, text="ok")

        return httpx.MockTransport(handler)

    transport = PerOriginTransport(factory, per_origin=3, max_origins=2)

    async def go() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            for url in ("http://a/1", "http://a/2", "http://b/1", "https://a/1", "http://c/1"):
                assert (await client.get(url)).status_code == 200

    asyncio.run(go())
    # a and b get their own pools of 3; the third and fourth origins share the overflow pool.
    assert [(size, urls) for size, urls in made] == [
        (3, ["http://a/1", "http://a/2"]),
        (3, ["http://b/1"]),
        (100, ["https://a/1", "http://c/1"]),
    ]


def test_a_304_is_a_result_only_when_the_request_was_conditional() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(304, headers={"etag": '"v2"'})

    async def go(headers: dict[str, str]) -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await Fetcher(client, LIMITS).fetch(
                "http://site.test/a", headers=headers
            )

    result = asyncio.run(go({"If-None-Match": '"v1"'}))
    assert result.not_modified and result.etag == '"v2"'  # type: ignore[attr-defined]
    with pytest.raises(HTTPStatusError) as info:
        asyncio.run(go({}))
    assert info.value.status == 304 and "not conditional" in str(info.value)
