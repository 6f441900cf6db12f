"""The network policy: exactly the ranges a user opens, never link-local, multicast or metadata
addresses unless named exactly, and every redirect hop checked.

No test here connects outside 127.0.0.0/8: names resolve through a stub (``fake_dns``), and the
``socket_guard`` fixture fails a test on any connect to another address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import replace
from urllib.parse import quote

import httpx
import pytest

from crawler.errors import BlockedAddress, FetchError, RedirectOutOfScope
from crawler.fetch import Fetcher, make_client
from crawler.netpolicy import PRIVATE_NETWORKS, NetworkPolicy, parse_network
from crawler.robots import RobotsCache
from crawler.urls import canonicalize
from tests.crawling import fetch_limits
from tests.fixtures_net import FakeDNS, SocketGuard


@pytest.fixture(autouse=True)
def _local_only(socket_guard: SocketGuard) -> None:
    """Every test of this module runs under the socket guard."""


LOCAL = NetworkPolicy.from_cidrs(["127.0.0.0/8"])
EVERYTHING = NetworkPolicy.from_cidrs(["0.0.0.0/0", "::/0"])


@pytest.mark.parametrize(
    ("policy", "address", "refused"),
    [
        (NetworkPolicy(), "8.8.8.8", None),
        (NetworkPolicy(), "127.0.0.1", "loopback"),
        (NetworkPolicy(), "169.254.169.254", "cloud metadata"),
        (NetworkPolicy(), "100.100.100.200", "cloud metadata"),
        (LOCAL, "127.0.0.1", None),
        (LOCAL, "127.9.9.9", None),
        (LOCAL, "::ffff:127.0.0.1", None),  # the same host, spelled as IPv6
        (LOCAL, "::1", "loopback"),  # not named: 127.0.0.0/8 is IPv4 only
        (LOCAL, "10.0.0.1", "private"),
        (LOCAL, "192.168.1.1", "private"),
        (LOCAL, "169.254.169.254", "cloud metadata"),
        (LOCAL, "0.0.0.0", "unspecified"),
        # Wide ranges never open the addresses that must be named exactly.
        (EVERYTHING, "10.0.0.1", None),
        (EVERYTHING, "100.64.0.1", None),
        (EVERYTHING, "169.254.169.254", "cloud metadata"),
        (EVERYTHING, "169.254.170.2", "cloud metadata"),
        (EVERYTHING, "fd00:ec2::254", "cloud metadata"),
        (EVERYTHING, "100.100.100.200", "cloud metadata"),
        (EVERYTHING, "169.254.1.1", "link-local"),
        (EVERYTHING, "fe80::1", "link-local"),
        (EVERYTHING, "224.0.0.1", "multicast"),
        (EVERYTHING, "ff02::1", "multicast"),
        (EVERYTHING, "0.0.0.0", "unspecified"),
        (EVERYTHING, "::", "unspecified"),
        (EVERYTHING, "::ffff:169.254.169.254", "cloud metadata"),
        (EVERYTHING, "2002:a9fe:a9fe::", "cloud metadata"),  # 6to4
        (EVERYTHING, "64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64
        # Named exactly: open.
        (NetworkPolicy.from_cidrs(["169.254.0.0/16"]), "169.254.1.1", None),
        (NetworkPolicy.from_cidrs(["169.254.0.0/16"]), "169.254.169.254", "cloud metadata"),
        (NetworkPolicy.from_cidrs(["169.254.169.254/32"]), "169.254.169.254", None),
        (NetworkPolicy.from_cidrs(["169.254.169.254"]), "169.254.169.254", None),
        (NetworkPolicy.from_cidrs(["224.0.0.0/24"]), "224.0.0.1", None),
        # The deprecated switch: loopback and the private ranges, nothing more.
        (NetworkPolicy().with_private_networks(), "127.0.0.1", None),
        (NetworkPolicy().with_private_networks(), "::1", None),
        (NetworkPolicy().with_private_networks(), "10.1.2.3", None),
        (NetworkPolicy().with_private_networks(), "172.16.0.1", None),
        (NetworkPolicy().with_private_networks(), "fd12::1", None),
        (NetworkPolicy().with_private_networks(), "169.254.169.254", "cloud metadata"),
        (NetworkPolicy().with_private_networks(), "169.254.1.1", "link-local"),
        (NetworkPolicy().with_private_networks(), "100.64.0.1", "non-global"),
        (NetworkPolicy().with_private_networks(), "224.0.0.1", "multicast"),
    ],
)
def test_policy_refusals(policy: NetworkPolicy, address: str, refused: str | None) -> None:
    assert policy.refusal(ipaddress.ip_address(address)) == refused


def test_private_alias_equals_from_cidrs_private() -> None:
    assert NetworkPolicy.from_cidrs([], private=True) == NetworkPolicy().with_private_networks()
    assert set(NetworkPolicy.from_cidrs([], private=True).allowed) == set(PRIVATE_NETWORKS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1/8", "did you mean 127.0.0.0/8"),
        ("localhost", "not a CIDR network"),
        ("300.0.0.0/8", "not a CIDR network"),
        ("10.0.0.0/33", "not a CIDR network"),
        ("", "empty"),
    ],
)
def test_bad_networks_are_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_network(text)


def test_settings_read_allowed_networks_from_a_comma_separated_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from settings import Settings

    monkeypatch.setenv("CRAWLER_ALLOWED_NETWORKS", "127.0.0.0/8, ::1")
    settings = Settings()
    assert settings.allowed_networks == ["127.0.0.0/8", "::1/128"]
    assert settings.fetch_limits().network == NetworkPolicy.from_cidrs(["127.0.0.0/8", "::1"])


# -- a hostile site on 127.0.0.1 -------------------------------------------------------------------


def _fetch(url: str, policy: NetworkPolicy, **fetcher_args: object) -> object:
    limits = replace(fetch_limits(user_agent="t", page_deadline=5.0), network=policy)

    async def go() -> object:
        async with make_client(limits) as client:
            return await Fetcher(client, limits, **fetcher_args).fetch(url)  # type: ignore[arg-type]

    return asyncio.run(go())


def _redirect(base: str, target: str) -> str:
    return f"{base}/to?u={quote(target, safe='')}"


@pytest.mark.parametrize(
    ("target", "answers", "reason"),
    [
        ("http://metadata.test/latest/meta-data/", {"metadata.test": ["169.254.169.254"]}, "cloud metadata"),
        ("http://intranet.test/admin", {"intranet.test": ["10.0.0.1"]}, "private"),
        ("http://rebind.test/", {"rebind.test": ["127.0.0.1", "10.0.0.7"]}, "private"),
        ("http://link.test/", {"link.test": ["fe80::1"]}, "link-local"),
        ("http://169.254.169.254/latest/meta-data/", {}, "cloud metadata"),
        ("http://10.0.0.1/", {}, "private"),
        ("http://[fe80::1]/", {}, "link-local"),
        ("http://[::ffff:169.254.169.254]/", {}, "cloud metadata"),
        ("http://224.0.0.1/", {}, "multicast"),
        ("http://0.0.0.0/", {}, "unspecified"),
    ],
)
def test_a_redirect_hop_outside_the_policy_is_refused_and_named(
    hostile_server: tuple[str, list[str]],
    fake_dns: FakeDNS,
    target: str,
    answers: dict[str, list[str]],
    reason: str,
) -> None:
    base, hits = hostile_server
    fake_dns.answers.update(answers)
    start = _redirect(base, target)
    with pytest.raises(BlockedAddress, match=reason) as caught:
        _fetch(start, LOCAL)
    assert caught.value.final_url == canonicalize(target)  # the hop, not the hostile page
    assert len(hits) == 1  # the hostile page itself; the hop never reached anything


def test_a_wide_allowance_still_refuses_the_metadata_address(
    hostile_server: tuple[str, list[str]], fake_dns: FakeDNS
) -> None:
    base, _ = hostile_server
    fake_dns.answers["metadata.test"] = ["169.254.169.254"]
    with pytest.raises(BlockedAddress, match="cloud metadata"):
        _fetch(_redirect(base, "http://metadata.test/"), EVERYTHING)
    with pytest.raises(BlockedAddress, match="cloud metadata"):
        _fetch("http://169.254.169.254/", EVERYTHING)


def test_a_redirect_within_the_policy_is_followed(hostile_server: tuple[str, list[str]]) -> None:
    base, hits = hostile_server
    result = _fetch(_redirect(base, f"{base}/page"), LOCAL)
    assert result.final_url == f"{base}/page"  # type: ignore[attr-defined]
    assert len(hits) == 2 and hits[-1] == "/page"


def test_the_default_policy_refuses_the_local_site(hostile_server: tuple[str, list[str]]) -> None:
    base, hits = hostile_server
    with pytest.raises(BlockedAddress, match="loopback"):
        _fetch(f"{base}/page", NetworkPolicy())
    assert hits == []


def test_the_hop_hook_refuses_a_hop_out_of_scope_before_it_is_requested(
    hostile_server: tuple[str, list[str]],
) -> None:
    base, hits = hostile_server
    seen: list[str] = []

    def in_scope(url: str) -> None:
        seen.append(url)
        if "/elsewhere" in url:
            raise RedirectOutOfScope(f"{url} is outside the source's scope")

    with pytest.raises(RedirectOutOfScope) as caught:
        _fetch(_redirect(base, f"{base}/elsewhere"), LOCAL, hop_check=in_scope)
    assert caught.value.final_url == f"{base}/elsewhere"
    assert caught.value.reason == "redirect_out_of_scope"
    assert seen == [f"{base}/elsewhere"] and len(hits) == 1

    async def async_in_scope(url: str) -> None:
        seen.append(url)

    result = _fetch(_redirect(base, f"{base}/page"), LOCAL, hop_check=async_in_scope)
    assert result.final_url == f"{base}/page"  # type: ignore[attr-defined]


def test_an_error_on_a_hop_names_the_hop(hostile_server: tuple[str, list[str]]) -> None:
    base, _ = hostile_server
    with pytest.raises(FetchError) as caught:
        _fetch(_redirect(base, f"{base}/missing"), LOCAL)
    assert caught.value.reason == "http_404"
    assert caught.value.final_url == f"{base}/missing"


def test_robots_redirect_to_a_refused_literal_is_refused_before_connecting(
    hostile_server: tuple[str, list[str]],
) -> None:
    base, _ = hostile_server

    async def go() -> None:
        limits = replace(fetch_limits(user_agent="t"), network=LOCAL)
        transport = httpx.MockTransport(
            lambda request: httpx.Response(302, headers={"Location": "http://169.254.169.254/robots.txt"})
        )
        async with httpx.AsyncClient(transport=transport) as client:
            await RobotsCache(client, "t", policy=limits.network)(f"{base}/page")

    with pytest.raises(BlockedAddress, match="cloud metadata"):
        asyncio.run(go())


def test_the_socket_guard_refuses_and_records(socket_guard: SocketGuard) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(ConnectionRefusedError, match="socket_guard"):
            sock.connect(("10.0.0.1", 80))
    finally:
        sock.close()
    assert socket_guard.violations == ["connect to ('10.0.0.1', 80)"]
    socket_guard.violations.clear()  # this test wanted it; others fail on it
