"""Refuse to connect to addresses a crawler of untrusted links must not reach.

Links come from pages anyone can write, so by default the crawler never connects to loopback,
private, link-local, multicast, reserved or unspecified addresses (IPv4, IPv6 and IPv4-mapped
IPv6). The check happens where it cannot be dodged: in the network backend, on the address we
actually connect to, after our own DNS resolution. That covers every redirect hop (each hop opens
or reuses a connection checked this way) and DNS rebinding (we connect to the IP we checked, not
to a name that might resolve differently a second time).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore

from crawler.errors import BlockedAddress, ConnectionFailed
from crawler.netstream import AsyncioBackend, BackendTransport

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be contacted, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return blocked_reason(mapped)
        if ip.teredo is not None:
            return blocked_reason(ip.teredo[1])
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    if not ip.is_global:  # shared address space (100.64/10) and other non-global ranges
        return "non-global"
    return None


def check_ip(text: str, host: str) -> None:
    """Raise BlockedAddress if ``text`` (an IP address) is not a public address."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    reason = blocked_reason(ip)
    if reason is not None:
        raise BlockedAddress(
            f"{host} resolves to {reason} address {ip}; refused (private networks not allowed)"
        )


def check_literal_host(host: str) -> None:
    """Fail fast, before any DNS, when the URL's host is itself a blocked IP literal."""
    try:
        check_ip(host.strip("[]"), host)
    except ValueError:
        return  # a name, not a literal: checked at connection time


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves names itself and connects only to addresses that pass :func:`check_ip`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or AsyncioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from exc
        except OSError as exc:
            raise ConnectionFailed(f"cannot resolve {host}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise ConnectionFailed(f"{host} has no addresses")
        # Every address must pass: a name that mixes public and private answers is hostile.
        for address in addresses:
            check_ip(address, host)
        return await self._inner.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are never crawled")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(BackendTransport):
    """httpx transport whose connection pool connects through :class:`GuardedBackend`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(network_backend=GuardedBackend(), **kwargs)
