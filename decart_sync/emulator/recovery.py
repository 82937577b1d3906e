"""Keyframe recovery for the emulator's video receivers: what media servers do, aiortc does not.

aiortc's receiver asks for a retransmission only when it sees a new hole,
and holds every later packet behind a hole until 512 more have arrived
(some 20 s of a small picture); nor does it ask for a keyframe when a frame
it assembled cannot be decoded. Over a lossy network one lost retransmission,
or a keyframe missing its first packet, then stops the model's input for good.
A real media server (libwebrtc's receiver, LiveKit's SFU) gives up on such a
hole and asks the sender for a keyframe; :class:`KeyframeRecovery` does the
same: it asks again for missing packets every :data:`CHECK` seconds, and when
packets keep coming but no frame has been decoded for :data:`STALL` seconds,
it drops what the receiver holds and sends a PLI.

It also keeps empty frames from the decoder. After an outage libwebrtc probes
the bandwidth with padding-only packets, on the video SSRC when no RTX was
negotiated (the LiveKit client's publisher); aiortc assembles them into a frame
with no data, and FFmpeg takes an empty packet as end of stream: every later
frame failed with "End of file" and the model's input never came back (seen
after a 3 s blackout, in about one run in three).

It uses aiortc's private receiver parts (the per-instance packet handler, the
jitter buffer, the NACK generator and the decoder queue, as named in aiortc 1.16)
and so lives here, in the emulator, never in the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

STALL = 0.3  # seconds of packets without a decoded frame before the hole is given up
CHECK = 0.05  # how often a receiver is looked at, and missing packets asked for again


class KeyframeRecovery:
    """Watch the video receivers of the peer connections given to :meth:`cover`."""

    def __init__(self) -> None:
        self._watched: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def cover(self, pc: Any) -> None:
        for transceiver in pc.getTransceivers():
            receiver = transceiver.receiver
            if transceiver.kind == "video" and id(receiver) not in self._watched:
                self._watched.add(id(receiver))
                _skip_empty_frames(receiver)
                self._tasks.append(asyncio.ensure_future(_watch(receiver)))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


async def _watch(receiver: Any) -> None:
    handle, track = receiver._handle_rtp_packet, receiver.track
    recv = track.recv
    last_packet = last_frame = asyncio.get_running_loop().time()
    ssrc: int | None = None

    async def handle_rtp_packet(packet: Any, arrival_time_ms: int) -> None:
        nonlocal last_packet, ssrc
        last_packet, ssrc = time.monotonic(), packet.ssrc
        await handle(packet, arrival_time_ms=arrival_time_ms)

    async def watched_recv() -> Any:
        nonlocal last_frame
        frame = await recv()
        last_frame = time.monotonic()
        return frame

    receiver._handle_rtp_packet = handle_rtp_packet
    track.recv = watched_recv
    last_packet = last_frame = time.monotonic()
    while True:
        await asyncio.sleep(CHECK)
        now = time.monotonic()
        if ssrc is None or now - last_packet > STALL:
            continue  # nothing sent yet, or a sender that paused
        missing = receiver._RTCRtpReceiver__nack_generator.missing
        if missing:  # as libwebrtc's receiver does: again until they come or are given up
            with contextlib.suppress(ConnectionError):
                await receiver._send_rtcp_nack(ssrc, sorted(missing))
        if now - last_frame < STALL:
            continue
        log.debug("video input stalled with packets arriving: dropping the hole, asking a keyframe")
        _give_up_hole(receiver)
        last_frame = now  # one request per stall period, not one per check
        with contextlib.suppress(ConnectionError):
            await receiver._send_rtcp_pli(ssrc)


def _skip_empty_frames(receiver: Any) -> None:
    decoder_queue = receiver._RTCRtpReceiver__decoder_queue
    put = decoder_queue.put

    def put_unless_empty(task: Any, *args: Any, **kwargs: Any) -> None:
        if task is not None and not task[1].data:
            log.debug("an empty (padding-only) video frame kept from the decoder")
            return  # nothing to decode, and it would end the decoder's stream
        put(task, *args, **kwargs)

    decoder_queue.put = put_unless_empty


def _give_up_hole(receiver: Any) -> None:
    """Empty the jitter buffer, so the next packet starts it afresh, and stop asking for
    the missing packets: the keyframe asked for replaces them."""
    buffer = receiver._RTCRtpReceiver__jitter_buffer
    buffer.remove(buffer.capacity)
    buffer._origin = None
    receiver._RTCRtpReceiver__nack_generator.missing.clear()
