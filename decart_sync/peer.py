"""The peer connection: building it, shaping the offer, the remote side.

Pure asyncio over aiortc. :func:`build_offer` returns the SDP exactly as it
will go on the wire (VP8 preferred, with the browser clients' bitrate hints),
so the user's ``customize_offer`` hook edits what the server really gets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
)
from aiortc.sdp import candidate_from_sdp

log = logging.getLogger(__name__)

DEFAULT_ICE_SERVERS = ("stun:stun.l.google.com:19302",)
VP8_BITRATE_HINTS = "x-google-min-bitrate=300;x-google-start-bitrate=600"


def create_peer(ice_servers: Sequence[str]) -> RTCPeerConnection:
    servers = [RTCIceServer(urls=url) for url in ice_servers]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


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


def parse_candidate(payload: Any) -> RTCIceCandidate | None:
    """An ``ice-candidate`` message's candidate; None for end-of-candidates.

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
