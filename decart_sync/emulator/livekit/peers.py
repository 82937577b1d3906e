"""The server's aiortc peer connections for a client, and what feeds them.

LiveKit's classic protocol (``/rtc``) gives every participant two peer
connections: the *publisher* PC (the client offers its tracks, we answer) and
the *subscriber* PC (we offer other participants' tracks, the client
answers); ``/rtc/v1`` gives it the publisher PC alone, carrying both ways.
All are plain aiortc peers with no ICE servers. aiortc gathers all its candidates before it
returns a description, so ours travel inside the SDP (filtered to loopback
when the emulator is on loopback); the client's arrive as trickles, possibly
before the description they belong to, so those are queued until it is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from ...realtime.transports.loopback import loopback_only_sdp
from ...realtime.transports.recovery import KeyframeRecovery
from .. import colour, frame_timing
from ..netem import Shaper
from ..senders import tame_senders
from . import simulcast, twcc

log = logging.getLogger(__name__)

# A peer that does not close in this time is abandoned (it has no more tasks of ours).
CLOSE_TIMEOUT = 1.0
Network = Callable[[str], Shaper]  # a peer connection's target -> the network it crosses
Attach = Callable[[RTCPeerConnection, str], None]


def parse_trickle(candidate_init: str) -> RTCIceCandidate | None:
    """A TrickleRequest's ``candidateInit`` (JSON RTCIceCandidateInit); None: end of candidates.

    Raises ValueError for anything else.
    """
    init = json.loads(candidate_init)
    if not isinstance(init, dict):
        raise ValueError("candidateInit is not an object")
    text = init.get("candidate") or ""
    if not isinstance(text, str):
        raise ValueError("candidateInit.candidate is not text")
    text = text.strip().removeprefix("a=").removeprefix("candidate:")
    if not text:
        return None
    try:
        candidate = candidate_from_sdp(text)
    except (IndexError, KeyError, AssertionError) as exc:
        raise ValueError(f"unparsable candidate: {exc}") from None
    mid, index = init.get("sdpMid"), init.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    candidate.sdpMLineIndex = index if isinstance(index, int) and index >= 0 else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0  # bundled: the first m-line carries the transport
    return candidate


class Link:
    """One RTCPeerConnection with a queue for early candidates and a bounded close."""

    def __init__(self, target: str, *, loopback: bool, shaper: Shaper | None = None) -> None:
        self.target = target  # "publisher" or "subscriber", for logs
        self.shaper = shaper  # the network its media cross (netem)
        self.recovery = KeyframeRecovery()  # what aiortc's receiver lacks under loss
        # The publisher PC answers with max-bundle: with aiortc's default ("balanced"),
        # an offer bundling several m-lines of one kind behind another kind's (the
        # client's publisher offer: 3 audio, 4 video, data) leaves every video m-line
        # but the first on a transport aiortc has stopped: their media is never routed.
        # Our own offers (subscriber PC) keep the default, which libwebrtc accepts.
        policy = RTCBundlePolicy.MAX_BUNDLE if target == "publisher" else RTCBundlePolicy.BALANCED
        config = RTCConfiguration(iceServers=[], bundlePolicy=policy)
        self.pc = RTCPeerConnection(config)
        self.lock = asyncio.Lock()  # one negotiation at a time
        self._loopback = loopback
        self._pending: list[RTCIceCandidate | None] = []
        self._closing: asyncio.Future[None] | None = None
        self._feedback: asyncio.Task[None] | None = None  # publisher: see twcc
        self._stripped: set[int] = set()  # receivers whose packet trailers are read
        self._colours: colour.Watch | None = None  # what the client says of its pictures

    @property
    def closed(self) -> bool:
        return self._closing is not None

    def _local_sdp(self) -> str:
        sdp = self.pc.localDescription.sdp
        return loopback_only_sdp(sdp) if self._loopback else sdp

    async def answer(self, offer_sdp: str, attach: Attach | None = None) -> str:
        """Apply the client's offer and return our answer (publisher PC). ``attach(pc,
        offer_sdp)`` puts what we send on the offer's transceivers before we answer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self._flush()
        if attach is not None:
            attach(self.pc, offer_sdp)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        transceiver = next(iter(self.pc.getTransceivers()), None)
        if self._colours is None and transceiver is not None:
            self._colours = colour.Watch.of(offer_sdp)
            if self._colours is not None:  # before twcc's, which restores what it wrapped
                transport = transceiver.receiver.transport
                colour.install(transport, self._colours, twcc.header_extensions)
        if self._feedback is None and transceiver is not None:
            layers = simulcast.Layers(offer_sdp)
            transport = transceiver.receiver.transport
            self._feedback = twcc.install(transport, offer_sdp, keep=layers.keep)
        self.recovery.cover(self.pc)
        tame_senders(self.pc)  # what we send on this one too (the single-PC path)
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video" and id(transceiver.receiver) not in self._stripped:
                self._stripped.add(id(transceiver.receiver))
                frame_timing.strip_trailers(transceiver.receiver)
                if self._colours is not None and transceiver.receiver.track is not None:
                    colour.follow(transceiver.receiver.track, self._colours)
        if self.shaper is not None:
            self.shaper.cover(self.pc)
        local = colour.answer_with_colour(offer_sdp, self._local_sdp())
        if self._feedback is None:
            return local
        answer = twcc.answer_with_feedback(offer_sdp, local)
        return simulcast.accept(offer_sdp, answer)

    async def offer(self) -> str:
        """Our offer of everything attached so far (subscriber PC)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        tame_senders(self.pc)
        if self.shaper is not None:
            self.shaper.cover(self.pc)
        return twcc.with_start_bitrate(self._local_sdp())  # see twcc: receive-only

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        await self._flush()

    async def add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        if self.pc.remoteDescription is None:
            self._pending.append(candidate)
            return
        await self._add(candidate)

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for candidate in pending:
            await self._add(candidate)

    async def _add(self, candidate: RTCIceCandidate | None) -> None:
        try:
            await self.pc.addIceCandidate(candidate)
        except Exception as exc:  # one bad candidate must not end the session
            log.debug("%s PC: ignoring a candidate aiortc refused: %s", self.target, exc)

    async def close(self) -> None:
        """Idempotent and bounded; concurrent callers share one close."""
        if self._feedback is not None:
            self._feedback.cancel()
        self.recovery.close()
        if self.shaper is not None:
            self.shaper.close()
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.pc.close())
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(self._closing), CLOSE_TIMEOUT)


class Feed(MediaStreamTrack):
    """A per-connection stand-in for a published track.

    aiortc stops a sender's track when the sender ends; the published track
    must outlive one client connection (the client may rejoin), so each
    subscriber PC sends a Feed, and stopping the Feed leaves the source alone,
    unless the Feed ``owns`` it (a viewer's own copy: it goes with the viewer).
    """

    def __init__(self, source: MediaStreamTrack, *, owns: bool = False) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._owns = owns
        self.last_stamp: int | None = None  # the frame timing of the frame handed out last

    def stop(self) -> None:
        super().stop()
        if self._owns:
            self._source.stop()

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._source.recv()
        self.last_stamp = getattr(frame, "opaque", None)
        return frame
