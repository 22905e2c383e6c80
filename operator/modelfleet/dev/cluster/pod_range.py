"""Each local cluster's own pod IP range: a /16 inside 127.0.0.0/8 (pure).

Pod IPs must be loopback addresses (the engine emulator listens on them) and must differ between
clusters running side by side, or one cluster's emulator answers for another cluster's pods.
127.0.0.0/16 stays free for the API server and the host's own loopback addresses (127.0.0.1,
127.0.0.53, 127.0.1.1); 127.255.0.0/16 holds the loopback broadcast address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

PREFIX_LENGTH = 16
RESERVED = IPv4Network("127.0.0.0/16")
# The one range every cluster used before ranges were per cluster; a state.json written then has
# no pod range recorded, and its cluster still hands out these IPs.
LEGACY_POD_CIDR = "127.100.0.0/16"
CANDIDATES = tuple(IPv4Network(f"127.{octet}.0.0/{PREFIX_LENGTH}") for octet in range(1, 255))


class PodRangeError(RuntimeError):
    """Every candidate range is taken by another local cluster."""


def choose_pod_cidr(name: str, taken: Iterable[str]) -> str:
    """A /16 for cluster `name` that overlaps none of `taken` (other clusters' ranges).

    The search starts at a slot derived from the name, so a cluster restarted under the same
    name usually gets the same range back, and differently named clusters rarely probe far.
    """
    taken_networks = [ip_network(cidr, strict=False) for cidr in taken]
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % len(CANDIDATES)
    for offset in range(len(CANDIDATES)):
        candidate = CANDIDATES[(start + offset) % len(CANDIDATES)]
        if not any(candidate.overlaps(network) for network in taken_networks):
            return str(candidate)
    raise PodRangeError(
        f"all {len(CANDIDATES)} pod ranges in 127.0.0.0/8 are taken by other local clusters; "
        "stop some with `modelfleet cluster down --name NAME`"
    )


def contains(pod_cidr: str, ip: str) -> bool:
    """True when `ip` is an IPv4 address inside `pod_cidr`."""
    try:
        address = ip_address(ip)
    except ValueError:
        return False
    return isinstance(address, IPv4Address) and address in IPv4Network(pod_cidr)
