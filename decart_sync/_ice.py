"""Loopback ICE candidates for sessions that never leave the machine.

aioice leaves 127.0.0.1 out of its host candidates, so two aiortc peers on
one machine would talk over the machine's external address, or not at all on
a machine with only ``lo``. When either end is on loopback (the emulator, or
a client pointed at it) we add 127.0.0.1 to the candidates: media then stays
on 127.0.0.0/8 like the signaling does. Adding (not replacing) keeps every
other candidate, so other peers in the same process are unaffected.
"""

from __future__ import annotations

import ipaddress
import threading
from urllib.parse import urlsplit

import aioice.ice

_lock = threading.Lock()
_installed = False


def allow_loopback_candidates() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        original = aioice.ice.get_host_addresses

        def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            addresses = original(use_ipv4, use_ipv6)
            if use_ipv4 and "127.0.0.1" not in addresses:
                addresses.insert(0, "127.0.0.1")
            return addresses

        aioice.ice.get_host_addresses = with_loopback
        _installed = True


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname)


def loopback_only_sdp(sdp: str) -> str:
    """Drop every non-loopback candidate line from an SDP."""
    lines = sdp.split("\r\n")
    kept = [
        line
        for line in lines
        if not line.startswith("a=candidate:") or _candidate_ip(line).startswith("127.")
    ]
    return "\r\n".join(kept)


def _candidate_ip(line: str) -> str:
    parts = line.split()
    return parts[4] if len(parts) > 4 else ""
