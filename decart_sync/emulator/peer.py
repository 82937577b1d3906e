"""The emulator's side of one peer connection: answering offers, taking candidates.

Clients trickle ``ice-candidate`` messages before or after their offer (the
browser SDK's older releases send the offer, then candidates; aiortc clients
put them in the SDP and trickle none), so candidates that arrive before the
remote description are queued and applied right after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from ..realtime.transports.loopback import loopback_only_sdp
from ..realtime.transports.recovery import KeyframeRecovery
from .netem import Shaper
from .senders import tame_senders

log = logging.getLogger(__name__)

# A peer that does not close in this time is abandoned (it has no more tasks of ours).
CLOSE_TIMEOUT = 1.0


class BadCandidate(ValueError):
    pass


def parse_client_candidate(payload: Any) -> RTCIceCandidate | None:
    """An ``ice-candidate`` payload; None means end of candidates.

    Raises `BadCandidate` for anything that is neither.
    """
    if payload is None:
        return None
    if not isinstance(payload, dict):
        raise BadCandidate("the candidate is not an object")
    text = payload.get("candidate")
    if text is None or text == "":
        return None  # browsers end gathering with an empty candidate too
    if not isinstance(text, str):
        raise BadCandidate("candidate.candidate is not text")
    text = text.strip()
    if text.startswith("a="):
        text = text[2:]
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    try:
        candidate = candidate_from_sdp(text)
    except (ValueError, IndexError, KeyError, AssertionError) as exc:
        raise BadCandidate(f"unparsable candidate: {exc}") from None
    mid, index = payload.get("sdpMid"), payload.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    candidate.sdpMLineIndex = index if isinstance(index, int) and index >= 0 else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0  # liberal: a lone bundled m-line
    return candidate


class Peer:
    """One RTCPeerConnection with no ICE servers: the emulator is reached directly.
    ``shaper``: the network its media cross (`netem`)."""

    def __init__(self, *, loopback: bool, shaper: Shaper | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.shaper = shaper
        self.recovery = KeyframeRecovery()  # what aiortc's receiver lacks under loss
        self._loopback = loopback
        self._pending: list[RTCIceCandidate | None] = []
        self._closing: asyncio.Future[None] | None = None

    @property
    def state(self) -> str:
        return self.pc.connectionState

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        self.pc.on(event, handler)

    async def answer(self, offer_sdp: str, add_tracks: Callable[[RTCPeerConnection], None]) -> str:
        """Apply the offer, let ``add_tracks`` attach our media, and return the answer SDP."""
        pc = self.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pending, self._pending = self._pending, []
        for candidate in pending:
            await self._add(candidate)
        add_tracks(pc)
        await pc.setLocalDescription(await pc.createAnswer())  # gathers our candidates
        self.recovery.cover(pc)
        tame_senders(pc)
        if self.shaper is not None:
            self.shaper.cover(pc)
        sdp = pc.localDescription.sdp
        return loopback_only_sdp(sdp) if self._loopback else sdp

    async def add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        if self.pc.remoteDescription is None:
            self._pending.append(candidate)
        else:
            await self._add(candidate)

    async def _add(self, candidate: RTCIceCandidate | None) -> None:
        try:
            await self.pc.addIceCandidate(candidate)
        except Exception as exc:  # a bad candidate must not end the session
            log.debug("ignoring an ICE candidate aiortc refused: %s", exc)

    async def close(self) -> None:
        """Idempotent and bounded; concurrent callers share one close."""
        self.recovery.close()
        if self.shaper is not None:
            self.shaper.close()
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.pc.close())
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(self._closing), CLOSE_TIMEOUT)
