"""Refuse to connect to addresses a crawler of untrusted links must not reach.

Links come from pages anyone can write, so every connection is checked against a
:class:`~crawler.netpolicy.NetworkPolicy` (by default: public unicast addresses only). The
check happens where it cannot be dodged: in the network backend, on the address we actually
connect to, after our own DNS resolution. That covers every redirect hop (each hop opens or
reuses a connection checked this way) and DNS rebinding (we connect to the IP we checked, not
to a name that might resolve differently a second time). The fetcher also checks a hop whose
host is an IP literal before it asks the client at all.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore

from crawler.errors import BlockedAddress, ConnectionFailed
from crawler.netpolicy import (
    DEFAULT_POLICY,
    METADATA_ADDRESSES,
    PRIVATE_NETWORKS,
    NetworkPolicy,
    blocked_reason,
    check_ip,
    check_literal_host,
    parse_network,
)
from crawler.netstream import AsyncioBackend, BackendTransport

__all__ = [
    "DEFAULT_POLICY",
    "METADATA_ADDRESSES",
    "PRIVATE_NETWORKS",
    "GuardedBackend",
    "GuardedTransport",
    "NetworkPolicy",
    "blocked_reason",
    "check_ip",
    "check_literal_host",
    "parse_network",
]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves names itself and connects only to addresses its policy accepts."""

    def __init__(
        self, inner: httpcore.AsyncNetworkBackend | None = None, *, policy: NetworkPolicy = DEFAULT_POLICY
    ) -> None:
        self._inner = inner or AsyncioBackend()
        self.policy = policy

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
            self.policy.check_ip(address, host)
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

    def __init__(self, *, policy: NetworkPolicy = DEFAULT_POLICY, **kwargs: Any) -> None:
        super().__init__(network_backend=GuardedBackend(policy=policy), **kwargs)
