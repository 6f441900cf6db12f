"""The asyncio network backend under httpx: plain and TLS requests, a pooled connection the server
closed, timeouts and refusals, all against servers started here on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from crawler.netstream import BackendTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\n<p>hello</p>"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def _serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    return server, server.sockets[0].getsockname()[1]


def test_keep_alive_requests_reuse_one_connection() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                await _read_request(reader)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> list[bytes]:
        server, port = await _serve(handler)
        async with server, httpx.AsyncClient(transport=BackendTransport()) as client:
            bodies = [(await client.get(f"http://127.0.0.1:{port}/{i}")).content for i in range(3)]
        return bodies

    assert asyncio.run(main()) == [b"<p>hello</p>"] * 3
    assert connections == 1


def test_a_pooled_connection_the_server_closed_is_not_reused() -> None:
    """The server answers, then closes the connection: the next request must see that (the
    backend's readability check) and open a new one, not fail on the dead one."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(RESPONSE)
        await writer.drain()
        writer.close()

    async def main() -> list[int]:
        server, port = await _serve(handler)
        async with server, httpx.AsyncClient(transport=BackendTransport()) as client:
            statuses = []
            for i in range(3):
                statuses.append((await client.get(f"http://127.0.0.1:{port}/{i}")).status_code)
                await asyncio.sleep(0.05)  # the close reaches the client before the next request
        return statuses

    assert asyncio.run(main()) == [200, 200, 200]
    assert connections == 3


def test_a_silent_server_is_a_read_timeout_and_a_closed_port_a_connect_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    async def main() -> None:
        server, port = await _serve(silent)
        transport = BackendTransport()
        async with server, httpx.AsyncClient(transport=transport, timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"http://127.0.0.1:{port}/")
        closed, closed_port = await _serve(silent)
        closed.close()
        await closed.wait_closed()
        async with httpx.AsyncClient(transport=BackendTransport(), timeout=1) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{closed_port}/")

    asyncio.run(main())


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_through_the_backend_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(RESPONSE)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    async def main() -> None:
        server, port = await _serve(handler, server_context)
        async with server:
            async with httpx.AsyncClient(transport=BackendTransport(verify=trusting)) as client:
                response = await client.get(f"https://127.0.0.1:{port}/")
                assert (response.status_code, response.content) == (200, b"<p>hello</p>")
            # A certificate nobody vouches for is refused.
            async with httpx.AsyncClient(transport=BackendTransport()) as client:
                with pytest.raises(httpx.ConnectError):
                    await client.get(f"https://127.0.0.1:{port}/")

    asyncio.run(main())
