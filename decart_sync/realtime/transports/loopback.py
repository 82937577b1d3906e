"""Loopback helpers for sessions that never leave the machine.

Which hosts and URLs are on loopback, and an SDP cut down to its loopback
candidates. The process-wide half, adding 127.0.0.1 to aioice's host
candidates, is `decart_sync._process.allow_loopback_candidates()`.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "is_loopback_url", "loopback_only_sdp"]


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
