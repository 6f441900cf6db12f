"""Which addresses the crawler may contact: a :class:`NetworkPolicy` value, pure (no I/O).

By default only public unicast addresses: never loopback, private, link-local, multicast,
reserved or unspecified ones (IPv4, IPv6, and IPv6 forms that embed an IPv4 address: mapped,
6to4, Teredo, NAT64, compatible). A policy opens exactly the ranges a user names
(``--allow-network 127.0.0.0/8`` for a site on this machine). Link-local, multicast, unspecified
and the cloud metadata addresses stay refused unless a named range lies inside them:
``169.254.169.254/32`` opens the metadata address, ``169.254.0.0/16`` opens the rest of
link-local but not it, and ``0.0.0.0/0`` opens none of them.

:mod:`crawler.netguard` enforces a policy where connections are made.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from crawler.errors import BlockedAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Instance metadata services: credentials of the machine we run on. AWS/GCP/Azure/OpenStack,
#: AWS ECS task metadata, AWS IMDS over IPv6, Alibaba Cloud, Oracle Cloud (legacy).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
#: What the deprecated ``--allow-private-networks`` opens: loopback and the private ranges.
PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_MULTICAST = (ipaddress.ip_network("224.0.0.0/4"), ipaddress.ip_network("ff00::/8"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def parse_network(text: str) -> IPNetwork:
    """``127.0.0.0/8``, ``::1/128`` or a bare address (one host) -> a network.

    Raises ValueError with a one-line explanation; host bits set (``10.0.0.1/8``) are refused
    rather than silently widened, since the user meant either the host or the range.
    """
    value = text.strip()
    if not value:
        raise ValueError("an empty network; give a CIDR such as 127.0.0.0/8")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a CIDR network such as 127.0.0.0/8 or fd00::/8") from exc
        raise ValueError(f"{value!r} has host bits set; did you mean {loose}?") from exc


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # not :: and ::1 themselves
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be contacted by default, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return blocked_reason(inner)
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
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


def _sensitive_range(ip: IPAddress) -> tuple[str, IPNetwork] | None:
    """For the addresses only an exact allowance opens: their kind and the range that names them."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata", ipaddress.ip_network(ip)
    if ip.is_unspecified:
        return "unspecified", ipaddress.ip_network(ip)
    for name, ranges in (("link-local", _LINK_LOCAL), ("multicast", _MULTICAST)):
        for network in ranges:
            if ip.version == network.version and ip in network:
                return name, network
    return None


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Which addresses the crawler may connect to: public unicast ones, plus ``allowed``.

    ``NetworkPolicy()`` is the safe default. Every check goes through :meth:`refusal`.
    """

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str], *, private: bool = False) -> NetworkPolicy:
        """The policy opening ``cidrs`` (ValueError naming a bad one), plus loopback and the
        private ranges when ``private`` (the deprecated ``--allow-private-networks``)."""
        networks = [parse_network(c) for c in cidrs]
        if private:
            networks.extend(PRIVATE_NETWORKS)
        return cls(tuple(dict.fromkeys(networks)))

    def with_private_networks(self) -> NetworkPolicy:
        """This policy plus loopback and the private ranges (the deprecated switch)."""
        return NetworkPolicy(tuple(dict.fromkeys((*self.allowed, *PRIVATE_NETWORKS))))

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.allowed) or "public addresses only"

    def _names(self, ip: IPAddress, inside: IPNetwork) -> bool:
        """Whether an allowed network containing ``ip`` lies within ``inside`` (names it exactly)."""
        return any(
            n.version == ip.version and ip in n and n.subnet_of(inside)  # type: ignore[arg-type]
            for n in self.allowed
        )

    def _opens(self, ip: IPAddress) -> bool:
        return any(n.version == ip.version and ip in n for n in self.allowed)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why this policy refuses ``ip`` (e.g. "link-local"), or None when it may be contacted."""
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            inner = embedded_ipv4(ip)
            if inner is not None:
                candidates.append(inner)  # judged as what it reaches, too
        for candidate in candidates:
            sensitive = _sensitive_range(candidate)
            if sensitive is not None and not self._names(candidate, sensitive[1]):
                return sensitive[0]
        if any(self._opens(c) for c in candidates):
            return None
        return blocked_reason(ip)

    def check_ip(self, text: str, host: str) -> None:
        """Raise BlockedAddress if this policy refuses ``text`` (an IP address) for ``host``."""
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        reason = self.refusal(ip)
        if reason is not None:
            hint = (
                "named exactly by --allow-network / CRAWLER_ALLOWED_NETWORKS"
                if _sensitive_range(ip) is not None
                else "in --allow-network / CRAWLER_ALLOWED_NETWORKS"
            )
            raise BlockedAddress(
                f"{host} resolves to {reason} address {ip}; refused (allowed only when {hint})"
            )

    def check_literal_host(self, host: str) -> None:
        """Fail fast, before any DNS or connection, when ``host`` is itself a refused IP literal."""
        try:
            self.check_ip(host.strip("[]"), host)
        except ValueError:
            return  # a name, not a literal: checked at connection time


DEFAULT_POLICY = NetworkPolicy()


def check_ip(text: str, host: str) -> None:
    """Raise BlockedAddress if ``text`` (an IP address) is not a public address (the default policy)."""
    DEFAULT_POLICY.check_ip(text, host)


def check_literal_host(host: str) -> None:
    """:meth:`NetworkPolicy.check_literal_host` of the default policy."""
    DEFAULT_POLICY.check_literal_host(host)
