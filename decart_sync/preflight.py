"""Preflight: can this machine reach the service, and how well? (the JS SDK's checkConnectivity)

[`check_connectivity()`][decart_sync.check_connectivity] answers before a session is paid for:

1. the control WebSocket's host: a TCP connection (and the TLS handshake for
   ``wss://``) to it, timed; no HTTP request, so no session is opened;
2. ICE: a throwaway peer connection gathers candidates from the STUN servers;
   a server-reflexive one means UDP gets out ("udp"), only others mean a relay
   would be needed ("relay"), none at all "failed" (the JS SDK's words); the
   time to it stands for the RTT, as in the JS SDK. With no servers given, the
   public STUN server the client uses; for a service on this machine (the
   emulator), the STUN servers it announces, if it announces any;
3. with ``deep=True``, a short synthetic session of ``model``: time to first
   frame, the output's frame rate and, over LiveKit, glass-to-glass latency.

The verdict is the JS SDK 0.1.20's (``classifyConnectivity``): failed ICE is
critical, a relay or an RTT over 300 ms poor, over 150 ms fair; ours adds an
unreachable WebSocket (critical) and, when deep, the connection-quality bands
of time to first frame (4/6/10 s) and glass to glass (0.5/0.9/1.5 s). Each
downgrade carries a reason a person can act on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from . import options
from ._portal import Portal
from .errors import DecartSDKError, InvalidOptionsError
from .metrics.quality import Thresholds, lower_better
from .models import ModelDefinition
from .realtime.transports.loopback import is_loopback_url

__all__ = ["ConnectivityReport", "check_connectivity"]

LEVELS = ("good", "fair", "poor", "critical")
RTT_GOOD_MS, RTT_MARGINAL_MS = 150, 300  # JS SDK 0.1.20 REALTIME_CONFIG.preflight.rtt
ICE_TIMEOUT = 5.0  # JS: iceGatherTimeoutMs
DEEP_SECONDS = 4.0  # of output counted after the first frame, for the frame rate
# Where the emulator announces its STUN server, in LiveKit's IceServer shape
# ({"ice_servers": [{"urls": [...]}]}). Decart's service announces none (its clients use
# public STUN), so only a service on this machine is asked.
ANNOUNCED_ICE_SERVERS = "/_emulator/ice-servers"
ANNOUNCE_TIMEOUT = 2.0


@attrs.frozen
class ConnectivityReport:
    """What [`check_connectivity()`][decart_sync.check_connectivity] found; ``str()`` is
    the report for people, ``as_dict()`` the same for JSON.

    ``verdict``: good, fair, poor or critical; ``reasons``: why it is not good,
    each a sentence a person can act on. ``websocket``: ``reachable``,
    ``rtt_ms``, ``error``. ``ice``: ``transport`` (udp, relay or failed),
    ``rtt_ms``, ``candidates``. ``session`` (``deep=True`` only): ``ttff_ms``,
    ``fps``, ``g2g_ms``, ``error``.
    """

    verdict: str  # good | fair | poor | critical
    reasons: tuple[str, ...]
    websocket: dict[str, Any]  # reachable, rtt_ms, error
    ice: dict[str, Any]  # transport (udp | relay | failed), rtt_ms, candidates, servers
    session: dict[str, Any] | None = None  # deep only: ttff_ms, fps, g2g_ms, error

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def __str__(self) -> str:
        ws, ice = self.websocket, self.ice
        reach = (
            f"reachable ({ws['rtt_ms']} ms)" if ws["reachable"] else f"unreachable: {ws['error']}"
        )
        rtt = f" ({ice['rtt_ms']} ms)" if ice["rtt_ms"] is not None else ""
        via = ", ".join(ice.get("servers") or ()) or "no STUN server"
        lines = [
            f"control WebSocket: {reach}",
            f"ICE: {ice['transport']}{rtt} via {via}, "
            f"candidates: {', '.join(ice['candidates']) or 'none'}",
        ]
        if self.session is not None:
            s = self.session
            lines.append(
                f"session: first frame in {s['ttff_ms']} ms, {s['fps']} fps, glass to glass "
                + ("unknown (plain WebRTC)" if s["g2g_ms"] is None else f"{s['g2g_ms']} ms")
                if s["error"] is None
                else f"session: failed: {s['error']}"
            )
        lines.append(f"verdict: {self.verdict}")
        lines.extend(f"  - {reason}" for reason in self.reasons)
        return "\n".join(lines)


def check_connectivity(
    *,
    base_url: str | None = None,
    ice_servers: Sequence[str] | None = None,
    deep: bool = False,
    model: ModelDefinition | str | None = None,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> ConnectivityReport:
    """Check the way to the service; never raises for what it finds (bad options do).

    ``ice_servers``: STUN/TURN URLs; default the public STUN server the client
    uses or, for a service on this machine that announces its own (the
    emulator does), those. ``deep=True`` also opens a short session of ``model`` with a
    synthetic source (it needs ``api_key`` or ``$DECART_API_KEY``, and costs a
    few seconds of generation on the real service). ``timeout`` bounds each step.
    """
    options.check_timeout(timeout)
    base = options.base_url(base_url)
    if deep and model is None:
        raise InvalidOptionsError("deep=True opens a session: pass model= as well")
    stun = ice_servers
    if stun is not None:
        stun = options.ice_servers(stun, base)
    websocket = _reach(base, timeout)
    if stun is None and websocket["reachable"] and is_loopback_url(base):
        stun = announced_ice_servers(base, min(timeout, ANNOUNCE_TIMEOUT))
    servers = list(options.DEFAULT_ICE_SERVERS) if stun is None else stun
    ice = {**_gather(servers, min(timeout, ICE_TIMEOUT)), "servers": servers}
    session = _session(base, model, api_key, timeout) if deep and model is not None else None
    verdict, reasons = classify(websocket, ice, session)
    return ConnectivityReport(verdict, tuple(reasons), websocket, ice, session)


def classify(
    websocket: dict[str, Any], ice: dict[str, Any], session: dict[str, Any] | None = None
) -> tuple[str, list[str]]:
    """The verdict and its reasons; the worst finding decides."""
    found: list[tuple[str, str]] = []
    if not websocket["reachable"]:
        error = websocket["error"]
        found.append(("critical", f"The service's control WebSocket cannot be reached: {error}"))
    transport, rtt = ice["transport"], ice["rtt_ms"]
    if transport == "failed":
        found.append(
            (
                "critical",
                "No ICE candidate could be gathered: real-time media is unlikely to work "
                "on this network.",
            )
        )
    elif transport == "relay":
        found.append(
            (
                "poor",
                "UDP to the STUN server could not be confirmed: the service needs direct UDP "
                "(it has no TURN relays); check the firewall.",
            )
        )
    elif rtt is not None and rtt > RTT_MARGINAL_MS:
        found.append(("poor", f"The round trip is high (~{rtt} ms > {RTT_MARGINAL_MS} ms)."))
    elif rtt is not None and rtt > RTT_GOOD_MS:
        found.append(("fair", f"The round trip is elevated (~{rtt} ms > {RTT_GOOD_MS} ms)."))
    if session is not None:
        if session["error"] is not None:
            found.append(("critical", f"A test session failed: {session['error']}"))
        else:
            ttff, bands = session["ttff_ms"], Thresholds().ttff_ms
            level = lower_better(ttff, bands)
            if level != "good":
                reason = f"The first frame took {ttff} ms (good is <= {bands.good:g})."
                found.append((level, reason))
            g2g, g2g_bands = session.get("g2g_ms"), Thresholds().g2g_ms
            level = lower_better(g2g, g2g_bands)
            if level != "good":
                reason = f"Glass to glass took {g2g} ms (good is <= {g2g_bands.good:g})."
                found.append((level, reason))
    worst = max((LEVELS.index(level) for level, _ in found), default=0)
    return LEVELS[worst], [reason for _, reason in found]


def announced_ice_servers(base: str, timeout: float) -> list[str] | None:
    """The STUN/TURN URLs the service at ``base`` announces for its clients, or None when
    it announces none (as Decart's service); asked over HTTP on the same host and port."""
    parts = urlsplit(base)
    scheme = "https" if parts.scheme == "wss" else "http"
    url = urlunsplit((scheme, parts.netloc, ANNOUNCED_ICE_SERVERS, "", ""))
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy to loopback
    try:
        with direct.open(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    servers = body.get("ice_servers") if isinstance(body, dict) else None
    if not isinstance(servers, list):
        return None
    urls = [
        url
        for server in servers
        if isinstance(server, dict) and isinstance(server.get("urls"), list)
        for url in server["urls"]
        if isinstance(url, str) and url.startswith(("stun:", "turn:", "turns:"))
    ]
    return urls or None


def _reach(base: str, timeout: float) -> dict[str, Any]:
    parts = urlsplit(base)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            if parts.scheme == "wss":
                with ssl.create_default_context().wrap_socket(raw, server_hostname=host):
                    pass
    except socket.gaierror as exc:
        return _unreached(f"cannot resolve {host!r} ({exc.strerror or exc}); is there a network?")
    except ssl.SSLError as exc:
        return _unreached(f"the TLS handshake with {host}:{port} failed ({exc.reason or exc})")
    except OSError as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or repr(exc))
        return _unreached(f"connecting to {host}:{port} failed: {what}")
    return {"reachable": True, "rtt_ms": round((time.monotonic() - started) * 1000), "error": None}


def _unreached(error: str) -> dict[str, Any]:
    return {"reachable": False, "rtt_ms": None, "error": error}


def _gather(servers: Sequence[str], timeout: float) -> dict[str, Any]:
    with Portal("decart-sync-preflight") as portal:
        try:
            return portal.call(_gather_async, servers, timeout, timeout=timeout + 2.0)
        except TimeoutError:
            return {"transport": "failed", "rtt_ms": None, "candidates": []}


async def _gather_async(servers: Sequence[str], timeout: float) -> dict[str, Any]:
    kinds, elapsed = await _candidates(servers, timeout)
    if kinds is None and servers:
        # The STUN servers never answered: host candidates alone, gathered in a moment,
        # tell "relay" (UDP unconfirmed) from "failed" (nothing at all), as the JS SDK does.
        kinds, _ = await _candidates([], timeout)
    kinds = kinds or []
    transport = "udp" if "srflx" in kinds else "relay" if kinds else "failed"
    return {
        "transport": transport,
        "rtt_ms": elapsed if transport == "udp" else None,
        "candidates": sorted(set(kinds)),
    }


async def _candidates(servers: Sequence[str], timeout: float) -> tuple[list[str] | None, int]:
    """The types of the candidates a throwaway peer gathers, and the ms it took; None at
    the timeout (aiortc gathers all at once, so a silent STUN server costs it all)."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration([RTCIceServer(url) for url in servers]))
    try:
        pc.createDataChannel("decart-preflight")
        started = time.monotonic()
        try:
            offer = await pc.createOffer()
            await asyncio.wait_for(pc.setLocalDescription(offer), timeout)
        except (asyncio.TimeoutError, OSError):
            return None, 0
        elapsed = round((time.monotonic() - started) * 1000)
        return [
            line.split(" typ ")[1].split()[0]
            for line in pc.localDescription.sdp.splitlines()
            if line.startswith("a=candidate:") and " typ " in line
        ], elapsed
    finally:
        await pc.close()


def _session(
    base: str, model: ModelDefinition | str, api_key: str | None, timeout: float
) -> dict[str, Any]:
    from .client.start import connect
    from .models import resolve
    from .sources import synthetic

    started = time.monotonic()
    try:
        definition = resolve(model)
        with connect(
            synthetic(definition),
            model=definition,
            api_key=api_key,
            base_url=base,
            timeout=timeout,
            reconnect=False,
        ) as client:
            output = client.frames(timeout=timeout)
            next(output)
            ttff = round((time.monotonic() - started) * 1000)
            first, count = time.monotonic(), 0
            while time.monotonic() - first < DEEP_SECONDS:
                next(output)
                count += 1
            fps = round(count / (time.monotonic() - first), 1)
            g2g = client.stats["g2g_ms_p50"]  # LiveKit's frame timing; None on plain WebRTC
    except (DecartSDKError, StopIteration) as exc:
        error = exc.message if isinstance(exc, DecartSDKError) else "the output ended"
        return {"ttff_ms": None, "fps": None, "g2g_ms": None, "error": error}
    return {"ttff_ms": ttff, "fps": fps, "g2g_ms": g2g, "error": None}
