from __future__ import annotations

import ipaddress

import pytest

from crawler.errors import BlockedAddress
from crawler.netguard import blocked_reason, check_ip, check_literal_host


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",
        "::",
    ],
)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None
    with pytest.raises(BlockedAddress):
        check_ip(address, "example")


@pytest.mark.parametrize("address", ["8.8.8.8", "202.108.22.5", "2400:da00::6666", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None
    check_ip(address, "example")


def test_literal_hosts_fail_fast_and_names_wait_for_dns() -> None:
    with pytest.raises(BlockedAddress):
        check_literal_host("127.0.0.1")
    with pytest.raises(BlockedAddress):
        check_literal_host("[::1]")
    check_literal_host("www.most.gov.cn")  # a name: checked at connection time instead


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    """Make the guarded backend's resolver answer from ``answers`` (no real DNS in tests)."""
    import socket

    import anyio

    async def getaddrinfo(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        if host not in answers:
            raise socket.gaierror(f"unknown host {host}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(anyio, "getaddrinfo", getaddrinfo)


def _fetch(url: str) -> None:
    import asyncio

    from crawler.fetch import Fetcher, make_client
    from tests.crawling import fetch_limits

    limits = fetch_limits(user_agent="t", page_deadline=5.0, allowed_networks=[])  # the default policy

    async def go() -> None:
        async with make_client(limits) as client:
            await Fetcher(client, limits).fetch(url)

    asyncio.run(go())


def test_a_name_resolving_to_a_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, unused_port_server: tuple[str, list[dict[str, str]]]
) -> None:
    base, requests = unused_port_server
    port = base.rsplit(":", 1)[1]
    _fake_dns(monkeypatch, {"rebind.example": ["127.0.0.1"], "mixed.example": ["8.8.8.8", "10.0.0.7"]})
    with pytest.raises(BlockedAddress, match="loopback"):
        _fetch(f"http://rebind.example:{port}/x")
    with pytest.raises(BlockedAddress, match="private"):
        _fetch(f"http://mixed.example:{port}/x")
    assert requests == []


def test_a_redirect_hop_to_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page on an allowed address redirects to 127.0.0.1: the hop is checked like the first."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/admin")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # Let the first hop through (as if it were public) by checking only non-literal names as
        # public: the resolver maps the name to the test server, and the check is patched to
        # accept that one answer, so only the redirect's literal 127.0.0.1 is judged for real.
        from crawler.netpolicy import NetworkPolicy

        real_check = NetworkPolicy.check_ip
        _fake_dns(monkeypatch, {"public.example": ["127.0.0.1"]})
        monkeypatch.setattr(
            NetworkPolicy,
            "check_ip",
            lambda self, ip, host: None if host == "public.example" else real_check(self, ip, host),
        )
        with pytest.raises(BlockedAddress):
            _fetch(f"http://public.example:{server.server_address[1]}/start")
        assert hits == ["/start"]  # the first hop was served, the loopback hop never was
    finally:
        server.shutdown()
        server.server_close()
