"""Tiny local servers for fetch tests (127.0.0.1 only)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@pytest.fixture
def unused_port_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    requests: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            requests.append({k.lower(): v for k, v in self.headers.items()})
            body = b"<html><body><p>ok</p></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


@pytest.fixture
def slow_server() -> Iterator[str]:
    """Sends headers, then drips one byte per 0.2 s forever (until the client leaves)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
                while not stop.is_set():
                    conn.sendall(b"x")
                    time.sleep(0.2)
            except OSError:
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/drip"
    stop.set()
    thread.join(timeout=2)
    listener.close()


# -- no connection leaves 127.0.0.0/8 -------------------------------------------------------------


def _loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name: socket.connect would resolve it itself, unchecked
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class SocketGuard:
    """Refuses (and records) every TCP/UDP connect to an address outside loopback.

    Installed by the ``socket_guard`` fixture on ``socket.socket.connect``/``connect_ex``, which
    asyncio's own connections go through too. The test fails at teardown if anything tried,
    even when the code under test swallowed the refusal (a fetcher turns it into a failure).
    """

    def __init__(self) -> None:
        self.violations: list[str] = []
        self._connect = socket.socket.connect
        self._connect_ex = socket.socket.connect_ex

    def _check(self, sock: socket.socket, address: object) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        host = str(address[0]) if isinstance(address, tuple) else str(address)
        if not _loopback(host):
            self.violations.append(f"connect to {address!r}")
            raise ConnectionRefusedError(
                f"socket_guard: tests never connect outside 127.0.0.0/8 ({address!r})"
            )

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        guard = self

        def connect(sock: socket.socket, address: object) -> None:
            guard._check(sock, address)
            guard._connect(sock, address)  # type: ignore[arg-type]

        def connect_ex(sock: socket.socket, address: object) -> int:
            guard._check(sock, address)
            return guard._connect_ex(sock, address)  # type: ignore[arg-type]

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def socket_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[SocketGuard]:
    """Fail the test on any connect outside 127.0.0.0/8 (use it autouse in a module::

        @pytest.fixture(autouse=True)
        def _local_only(socket_guard): ...
    """
    guard = SocketGuard()
    guard.install(monkeypatch)
    yield guard
    if guard.violations:
        pytest.fail("connections outside 127.0.0.0/8 were attempted: " + "; ".join(guard.violations))


class FakeDNS:
    """A resolver stub: ``answers[name]`` lists the addresses a name resolves to. IP literals and
    ``localhost`` resolve as usual (no query leaves the machine); any other name fails."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.queries: list[str] = []
        self._real = socket.getaddrinfo

    def getaddrinfo(self, host: object, port: object, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.queries.append(name)
        if name in self.answers:
            infos = []
            for address in self.answers[name]:
                ip = ipaddress.ip_address(address)
                family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
                sockaddr: tuple[Any, ...] = (address, int(port or 0))  # type: ignore[call-overload]
                if family == socket.AF_INET6:
                    sockaddr = (address, int(port or 0), 0, 0)  # type: ignore[call-overload]
                infos.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
            return infos
        try:
            ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
        except ValueError:
            if name != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, f"fake_dns: unknown name {name}") from None
        return self._real(host, port, *args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    """Names resolve only as the test says (``fake_dns.answers["metadata.test"] = ["169.254.169.254"]``)."""
    import anyio

    resolver = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)

    async def anyio_getaddrinfo(host: object, port: object, **kwargs: Any) -> list[Any]:
        return resolver.getaddrinfo(host, port, kwargs.get("family", 0), kwargs.get("type", 0))

    monkeypatch.setattr(anyio, "getaddrinfo", anyio_getaddrinfo)
    return resolver


@pytest.fixture
def hostile_server() -> Iterator[tuple[str, list[str]]]:
    """A site on 127.0.0.1 that redirects where it is told: ``/to?u=URL`` answers 302 to URL,
    ``/page`` is a small HTML page, ``/robots.txt`` redirects to ``?robots=URL`` when given.
    Yields the base URL and the paths it served."""
    from urllib.parse import parse_qs, urlsplit

    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path == "/to" and "u" in query:
                self.send_response(302)
                self.send_header("Location", query["u"][0])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if parts.path == "/robots.txt":
                body = b"User-agent: *\nAllow: /\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
            else:
                body = b"<html><head><title>t</title></head><body><p>page</p></body></html>"
                self.send_response(200 if parts.path == "/page" else 404)
                self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()
