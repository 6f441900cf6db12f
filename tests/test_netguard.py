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
