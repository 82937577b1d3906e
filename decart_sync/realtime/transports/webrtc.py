"""The plain WebRTC media path (classic models): one aiortc peer connection, negotiated
over the control WebSocket.

The client offers (camera models: sendrecv video; live_avatar: recvonly
video plus our audio; viewers: recvonly video and audio), prefers VP8 with
the browser clients' bitrate hints, lets the user's ``customize_offer`` edit
exactly what goes on the wire, and applies the server's ``answer`` and
trickled ``ice-candidate`` messages in whatever order they come
(docs/protocol.md, "Connecting over plain WebRTC"). Pure asyncio over aiortc.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp
from av import VideoFrame

from ...errors import DecartSDKError, InvalidOptionsError, SignalingError
from ...metrics.rates import ByteRates, NetworkStats, ms
from .. import messages
from ..aiortc_tracks import InputTrack
from ..messages import Message
from ..subscribe_tokens import SubscribeToken
from . import MediaHooks, MediaSettings, MediaTransport
from .recovery import KeyframeRecovery

log = logging.getLogger(__name__)

VP8_BITRATE_HINTS = "x-google-min-bitrate=300;x-google-start-bitrate=600"


class WebRTCTransport(MediaTransport):
    def __init__(self, settings: MediaSettings, hooks: MediaHooks) -> None:
        loop = asyncio.get_running_loop()
        self._settings = settings
        self._hooks = hooks
        self._pc: RTCPeerConnection | None = None
        self._answer: asyncio.Future[str] = loop.create_future()
        self._connected: asyncio.Future[None] = loop.create_future()
        self._candidates: list[RTCIceCandidate] = []  # those that came before the answer
        self._tasks: list[asyncio.Task[None]] = []
        self._relay: MediaRelay | None = None
        self._rates: ByteRates | None = None  # from the moment media flows
        # aiortc's receiver alone stalls the picture for seconds after an unlucky loss.
        self._recovery = KeyframeRecovery()

    async def start(self) -> None:
        settings = self._settings
        pc = self._pc = create_peer(settings.ice_servers)
        pc.on("connectionstatechange", self._on_state)
        pc.on("track", self._on_track)
        pc.on("error", self._on_failure)  # aiortc's connect task, or one of our handlers, raised
        video = None
        if settings.input is not None:
            video = InputTrack(settings.input, settings.model.fps)
        audio = settings.audio() if settings.audio is not None else None
        add_media(pc, video=video, audio=audio, receive_audio=settings.receive_only)

        sdp = await build_offer(pc)
        if settings.customize_offer is not None:
            sdp = await self._customize(sdp)
        await self._hooks.send(messages.offer(sdp))
        answer = await self._answer
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as exc:
            raise SignalingError(
                f"the server's SDP answer does not fit our offer: {exc}", cause=exc
            ) from exc
        for candidate in self._candidates:
            try:
                await pc.addIceCandidate(candidate)
            except Exception as exc:  # one bad candidate need not sink the connection
                log.warning("could not add a remote ICE candidate: %s", exc)
        self._candidates.clear()
        await self._connected

    async def _customize(self, sdp: str) -> str:
        """Run the user's hook off the loop; it may edit ``offer.sdp`` in place."""
        offer = RTCSessionDescription(sdp=sdp, type="offer")
        hook = self._settings.customize_offer
        assert hook is not None
        try:
            result = await asyncio.to_thread(hook, offer)
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:
            raise InvalidOptionsError(f"customize_offer raised {exc!r}", cause=exc) from exc
        if not isinstance(offer.sdp, str) or not offer.sdp.startswith("v=0"):
            raise InvalidOptionsError("customize_offer left the offer without a valid SDP")
        return offer.sdp

    # -- the server's side of the handshake -----------------------------------

    def handle(self, message: Message) -> bool:
        kind = message["type"]
        if kind == "answer":
            sdp = message["sdp"]
            if not isinstance(sdp, str):
                raise TypeError("sdp is not text")
            if not self._answer.done():
                self._answer.set_result(sdp)
        elif kind == "ice-candidate":
            self._add_candidate(candidate_of(message.get("candidate")))
        elif kind == "session_id":
            session_id, ip, port = (
                message["session_id"],
                message.get("server_ip"),
                message.get("server_port"),
            )
            if not isinstance(session_id, str):
                raise TypeError("session_id is not text")
            token = None
            if isinstance(ip, str) and ip and isinstance(port, int) and port:
                token = SubscribeToken(session_id, ip, port).encode()
            self._hooks.identify(session_id, token)
        else:
            return False
        return True

    def _add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        if candidate is None:
            return
        pc = self._pc
        if pc is not None and pc.remoteDescription is not None:
            task = asyncio.ensure_future(pc.addIceCandidate(candidate))
            task.add_done_callback(_log_failure)
        else:
            self._candidates.append(candidate)

    # -- media ----------------------------------------------------------------

    def _on_state(self) -> None:
        if self._pc is None:
            return
        state = self._pc.connectionState
        if state == "connected":
            self._rates = self._rates or ByteRates()
            if not self._connected.done():
                self._connected.set_result(None)
        elif state in ("failed", "closed"):
            self._hooks.lost(f"the peer connection {state}", None)

    def _on_failure(self, exc: BaseException) -> None:
        # Named by type and text: "TypeError: cert must be an X509 instance" says what to fix.
        self._hooks.lost(f"the media stack raised {type(exc).__name__}: {exc}", exc)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self._pc is not None:
            self._recovery.cover(self._pc)
        source = track
        if self._settings.wants_remote_stream:
            self._relay = self._relay or MediaRelay()
            source = self._relay.subscribe(track, buffered=False)
            self._hooks.remote_stream(self._relay.subscribe(track))
        pump = self._pump_video(source) if track.kind == "video" else self._pump_audio(source)
        self._tasks.append(asyncio.ensure_future(pump))

    async def _pump_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self._hooks.video(frame)

    async def _pump_audio(self, track: MediaStreamTrack) -> None:
        # Always drained: aiortc queues unread remote media without bound.
        with contextlib.suppress(MediaStreamError):
            while True:
                self._hooks.audio(await track.recv())

    async def stats(self) -> NetworkStats:
        pc, rates = self._pc, self._rates
        if pc is None or rates is None:
            return NetworkStats()
        report = await pc.getStats()
        return network_stats(report.values(), rates)

    async def sent_report(self) -> list[Any]:
        """aiortc's ``getStats()`` values (its ``RTCStats`` objects, both directions)."""
        pc = self._pc
        return [] if pc is None else list((await pc.getStats()).values())

    # -- ending ---------------------------------------------------------------

    def abort(self, error: DecartSDKError) -> None:
        for fut in (self._answer, self._connected):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # mark retrieved: a failed attempt may never await it

    async def close(self) -> None:
        self._recovery.close()
        for task in self._tasks:
            task.cancel()
        pc = self._pc
        if pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 1.0)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._recovery.closed()
        # Our handlers on the peer hold this transport, and through its hooks the session's
        # attempt: a cycle, freed only by the cyclic GC.
        if pc is not None:
            pc.remove_all_listeners()
        self._pc = self._relay = None
        self._tasks.clear()


# -- the peer connection and its SDP --------------------------------------------


# aiortc runs ICE, DTLS and the start of RTP in a task of its own that nobody awaits
# (RTCPeerConnection.__connect). An exception there (an older pyOpenSSL's "TypeError: cert
# must be an X509 instance" in the DTLS handshake) is only logged when the task is
# collected, and the connection sits in "connecting" until connect() times out.
CONNECT_TASK = "_RTCPeerConnection__connect"


class Peer(RTCPeerConnection):
    """An aiortc peer whose connect task's exception is emitted as an ``error`` event.

    An event, not a callback held: ``remove_all_listeners`` then frees the transport.
    """

    async def _RTCPeerConnection__connect(self) -> None:
        try:
            await getattr(super(), CONNECT_TASK)()
        except Exception as exc:
            self.emit("error", exc)


def create_peer(ice_servers: Sequence[str]) -> RTCPeerConnection:
    servers = [RTCIceServer(urls=url) for url in ice_servers]
    return Peer(RTCConfiguration(iceServers=servers))


def prefer_vp8(transceiver: Any) -> None:
    codecs = RTCRtpSender.getCapabilities("video").codecs
    preferred = [c for c in codecs if c.mimeType.lower() in ("video/vp8", "video/rtx")]
    transceiver.setCodecPreferences(preferred)


def add_media(
    pc: RTCPeerConnection,
    *,
    video: MediaStreamTrack | None,
    audio: MediaStreamTrack | None,
    receive_audio: bool,
) -> None:
    """Camera models: sendrecv video. Avatar: recvonly video + our audio. Viewer: recvonly both."""
    if video is not None:
        prefer_vp8(pc.addTransceiver(video, direction="sendrecv"))
    else:
        prefer_vp8(pc.addTransceiver("video", direction="recvonly"))
    if audio is not None:
        pc.addTransceiver(audio, direction="sendrecv")
    elif receive_audio:
        pc.addTransceiver("audio", direction="recvonly")


async def build_offer(pc: RTCPeerConnection) -> str:
    """The offer exactly as it goes on the wire, so ``customize_offer`` edits what is sent."""
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)  # gathers candidates into the SDP
    return add_bitrate_hints(pc.localDescription.sdp)


def add_bitrate_hints(sdp: str) -> str:
    lines = sdp.split("\r\n")
    vp8 = {m.group(1) for line in lines if (m := re.match(r"a=rtpmap:(\d+) VP8/", line))}
    out: list[str] = []
    has_fmtp = {pt for pt in vp8 if any(line.startswith(f"a=fmtp:{pt} ") for line in lines)}
    for line in lines:
        match = re.match(r"a=fmtp:(\d+) (.*)", line)
        if match and match.group(1) in vp8 and "x-google-min-bitrate" not in line:
            line = f"{line};{VP8_BITRATE_HINTS}"
        out.append(line)
        match = re.match(r"a=rtpmap:(\d+) VP8/", line)
        if match and match.group(1) not in has_fmtp:
            out.append(f"a=fmtp:{match.group(1)} {VP8_BITRATE_HINTS}")
    return "\r\n".join(out)


def candidate_of(payload: Any) -> RTCIceCandidate | None:
    """The candidate of a server's ``ice-candidate`` message; None for end-of-candidates.

    Raises ValueError for anything else.
    """
    if payload is None:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("candidate"), str):
        raise ValueError("candidate is not an object with candidate text")
    text = payload["candidate"]
    if not text:
        return None
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    try:
        candidate = candidate_from_sdp(text)
    except (ValueError, IndexError, AssertionError):
        raise ValueError(f"unparsable candidate {text[:60]!r}") from None
    candidate.sdpMid = payload.get("sdpMid") if isinstance(payload.get("sdpMid"), str) else None
    index = payload.get("sdpMLineIndex")
    candidate.sdpMLineIndex = index if isinstance(index, int) else None
    return candidate


CLOCK_RATES = {"video": 90_000, "audio": 48_000}  # RTP clocks: aiortc's jitter is in their ticks


def network_stats(report: Iterable[Any], rates: ByteRates) -> NetworkStats:
    """aiortc's stats report as figures: RTCP receiver reports give the RTT and our
    losses, our receivers the losses and jitter of what comes in. aiortc's
    inbound-rtp has no byte count, so bytes in are the transport's."""
    rtts: list[float] = []
    fractions: list[float] = []
    lost_in = lost_out = sent = None
    jitter: dict[str, float] = {}
    received = None
    for item in report:
        kind = item.type
        if kind == "remote-inbound-rtp":
            if item.roundTripTime is not None:
                rtts.append(item.roundTripTime)
            lost_out = (lost_out or 0) + item.packetsLost
            fractions.append(item.fractionLost / 256)  # RTCP's 8-bit fixed point
        elif kind == "inbound-rtp":
            lost_in = (lost_in or 0) + item.packetsLost
            jitter[item.kind] = item.jitter / CLOCK_RATES.get(item.kind, 90_000)
        elif kind == "outbound-rtp":
            sent = (sent or 0) + item.bytesSent
        elif kind == "transport":
            received = item.bytesReceived
    out, into = rates.update(sent, received)
    return NetworkStats(
        rtt_ms=ms(sum(rtts) / len(rtts)) if rtts else None,
        jitter_ms=ms(jitter.get("video", jitter.get("audio"))),
        packets_lost_in=lost_in,
        packets_lost_out=lost_out,
        bitrate_in_kbps=into,
        bitrate_out_kbps=out,
        fraction_lost_out=max(fractions) if fractions else None,
    )


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not add a remote ICE candidate: %s", task.exception())
