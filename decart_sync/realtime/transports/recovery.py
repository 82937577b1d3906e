"""Loss recovery for aiortc's video receivers: what libwebrtc's receiver does, aiortc's does not.

aiortc's receiver asks for a retransmission only when it sees a new hole,
and holds every later packet behind a hole until 512 more have arrived
(some 20 s of a small picture); nor does it ask for a keyframe when a frame
it assembled cannot be decoded. Over a lossy network one lost retransmission,
or a keyframe missing its first packet, then stops the video for seconds or
for good. `KeyframeRecovery` does what libwebrtc's receiver (a browser,
LiveKit's client, the service) does, for each video receiver it covers: the
client's on the plain-WebRTC path (the service's video to us), and the
emulator's (the camera to its model).

- It asks again for missing packets, each at most every `RENACK`
  seconds and `MAX_ASKS` times (libwebrtc's NackRequester: again after
  a round trip, ten tries), aiortc's own requests included.
- A short hole (`MAX_FILL` packets at most) between two frames (after a
  frame's last packet or a padding-only packet, before a frame's or NAL
  unit's first or a padding packet) that stays unanswered after
  `FILL_AFTER` requests, from a sender that pads, held padding, which
  no sender keeps for retransmission: it is filled with empty packets, so
  the frames behind it go on to the decoder. libwebrtc probes the bandwidth
  with padding on the video SSRC when no RTX was negotiated (the LiveKit
  client's publisher): before this, one lost padding
  packet stalled the emulator's input as a lost frame did, and under 5% loss
  some runs fell into a spiral of keyframe requests (7.8 to 25 fps of 25).
- When packets keep coming but no frame has been decoded for `STALL`
  seconds while a missing packet went unanswered `GIVE_UP_AFTER` times
  (or for `LONG_STALL` seconds: a decoder that fails), it drops what the
  receiver holds, sends a PLI, and keeps what arrives from the decoder until a
  keyframe begins (VP8, H.264): delta frames without their reference would
  only decode into garbage.
- Every frame complete in the jitter buffer goes to the decoder at once, not
  one per arriving packet as aiortc's does: frames held behind a mended hole
  stayed behind for good when the sender sent one packet per frame (a still
  picture): 3 s of latency after a blackout.
- It keeps empty frames from the decoder. aiortc assembles received padding
  into a frame with no data, and FFmpeg takes an empty packet as end of
  stream: every later frame failed with "End of file" (seen after a 3 s
  blackout, in about one run in three).

It uses aiortc's private receiver parts (the per-instance packet handler, the
jitter buffer, the NACK generator and the decoder queue, as named in aiortc
1.16). Where a later aiortc lacks one, the receiver is left as aiortc made it,
with a warning: the video still flows, with aiortc's own recovery only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

log = logging.getLogger(__name__)

CHECK = 0.05  # how often a receiver is looked at
RENACK = 0.1  # seconds before the same packet is asked for again (about a round trip here)
MAX_ASKS = 10
FILL_AFTER = 2  # unanswered requests before a hole between frames counts as padding
MAX_FILL = 4  # packets: a longer hole (an outage) is frames lost, not padding
STALL = 0.2  # seconds without a decoded frame, with a packet unanswered GIVE_UP_AFTER times...
GIVE_UP_AFTER = 3
LONG_STALL = 1.0  # ... or with none (a big keyframe still arriving is left to finish)
KEYFRAMES_KNOWN = ("video/vp8", "video/h264")  # whose keyframes _start can tell


class KeyframeRecovery:
    """Watch the video receivers of the peer connections given to `cover()`."""

    def __init__(self) -> None:
        self._watched: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def cover(self, pc: Any) -> None:
        for transceiver in pc.getTransceivers():
            receiver = transceiver.receiver
            if transceiver.kind == "video" and id(receiver) not in self._watched:
                self._watched.add(id(receiver))
                self._tasks.append(asyncio.ensure_future(_Watch(receiver).run()))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def closed(self) -> None:
        """After `close()`: until its tasks have ended."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class _Watch:
    """One receiver: its packets, frames, requests and holes."""

    def __init__(self, receiver: Any) -> None:
        self.receiver = receiver
        self.buffer: Any = None  # the receiver's parts, from _install
        self.missing: set[int] = set()
        self.asked: dict[int, tuple[int, float]] = {}  # seq: (requests, when last)
        self.awaiting_keyframe = False
        self.padded = False  # the sender pads (probes) on this stream
        self.ssrc: int | None = None
        self.last_packet = self.last_frame = time.monotonic()
        self._codecs: dict[int, Any] = {}

    def _install(self) -> None:
        """Hook into the receiver; from the task, as its track exists only once answered."""
        receiver = self.receiver
        self.buffer = receiver._RTCRtpReceiver__jitter_buffer
        self.missing = receiver._RTCRtpReceiver__nack_generator.missing
        self._codecs = receiver._RTCRtpReceiver__codecs
        queue = receiver._RTCRtpReceiver__decoder_queue
        self._send_nack = receiver._send_rtcp_nack
        handle, add, recv = receiver._handle_rtp_packet, self.buffer.add, receiver.track.recv
        receiver._send_rtcp_nack = self.nack

        mapper = receiver._RTCRtpReceiver__timestamp_mapper
        extra: list[tuple[Any, Any]] = []  # frames ready behind the one aiortc takes

        async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.last_packet, self.ssrc = time.monotonic(), packet.ssrc
            self.padded = self.padded or not packet.payload
            await handle(packet, arrival_time_ms=arrival_time_ms)
            for codec, frame in extra:  # after aiortc's, in order
                frame.timestamp = mapper.map(frame.timestamp)
                queue.put((codec, frame))
            extra.clear()

        def add_after_keyframe(packet: RtpPacket) -> tuple[bool, Any]:
            if self.awaiting_keyframe:
                codec = self._codec(packet)
                if codec in KEYFRAMES_KNOWN and _start(codec, packet.payload) != "key":
                    return False, None  # a delta frame's reference was given up
                self.awaiting_keyframe = False  # (other codecs: the decoder copes)
                self.missing.difference_update(
                    [seq for seq in self.missing if not uint16_gt(seq, packet.sequence_number)]
                )
            pli, frame = add(packet)
            # aiortc takes one frame per packet: frames held behind a hole that has just
            # been mended would stay behind, as latency, for as long as the sender sends
            # one packet per frame (a still picture). All of them go on now.
            ready = self.buffer._remove_frame
            while frame is not None and (more := ready(packet.sequence_number)) is not None:
                extra.append((self._codecs.get(packet.payload_type), more))
            return pli, frame

        receiver._handle_rtp_packet = handle_rtp_packet
        self.buffer.add = add_after_keyframe
        _skip_empty_frames(queue)

        async def watched_recv() -> Any:
            frame = await recv()
            self.last_frame = time.monotonic()
            return frame

        receiver.track.recv = watched_recv
        self.last_packet = self.last_frame = time.monotonic()

    def _codec(self, packet: RtpPacket) -> str:
        codec = self._codecs.get(packet.payload_type)
        return "" if codec is None else codec.mimeType.lower()

    async def nack(self, ssrc: int, lost: list[int]) -> None:
        """Ask for the packets not asked for within `RENACK`, up to `MAX_ASKS`."""
        if self.awaiting_keyframe:
            return  # what is missing now precedes the keyframe asked for
        now = time.monotonic()
        due = []
        for seq in lost:
            asks, when = self.asked.get(seq, (0, 0.0))
            if asks < MAX_ASKS and now - when >= RENACK:
                self.asked[seq] = (asks + 1, now)
                due.append(seq)
        for seq in [seq for seq in self.asked if seq not in self.missing]:
            del self.asked[seq]
        if due:
            await self._send_nack(ssrc, due)

    async def run(self) -> None:
        if self.receiver.track is None:
            return  # a transceiver that only sends
        try:
            self._install()
        except AttributeError as exc:
            log.warning("aiortc's receiver has changed (%s): no loss recovery beyond its own", exc)
            return
        while True:
            await asyncio.sleep(CHECK)
            now = time.monotonic()
            if self.ssrc is None or now - self.last_packet > STALL:
                continue  # nothing sent yet, or a sender that paused
            if self.missing and not self.awaiting_keyframe:
                with contextlib.suppress(ConnectionError):
                    await self.nack(self.ssrc, sorted(self.missing))
                self._fill_padding()
            stalled = now - self.last_frame
            if stalled < STALL or (stalled < LONG_STALL and not self._stuck()):
                continue
            log.debug("video input stalled with packets arriving: giving up, asking a keyframe")
            self._give_up()
            self.last_frame = now  # one request per stall period, not one per check
            with contextlib.suppress(ConnectionError):
                await self.receiver._send_rtcp_pli(self.ssrc)

    def _stuck(self) -> bool:
        """A packet the frames wait for (ahead in the jitter buffer) asked for in vain."""
        origin, capacity = self.buffer._origin, self.buffer.capacity
        return origin is not None and any(
            self.asked.get(seq, (0, 0.0))[0] >= GIVE_UP_AFTER
            for seq in self.missing
            if uint16_add(seq, -origin) < capacity
        )

    def _fill_padding(self) -> None:
        """Fill the holes between frames that went unanswered: padding, never resent."""
        buffer = self.buffer
        if buffer._origin is None or not self.padded:
            return
        packets, capacity = buffer._packets, buffer.capacity
        before: RtpPacket | None = None
        offset = 0
        while offset < capacity:
            packet = packets[uint16_add(buffer._origin, offset) % capacity]
            if packet is not None:
                before, offset = packet, offset + 1
                continue
            end = offset + 1
            while end < capacity and packets[uint16_add(buffer._origin, end) % capacity] is None:
                end += 1
            if before is None or end == capacity:
                return
            after = packets[uint16_add(buffer._origin, end) % capacity]
            hole = [uint16_add(buffer._origin, k) for k in range(offset, end)]
            between = (before.marker or not before.payload) and (
                not after.payload or _start(self._codec(after), after.payload) is not None
            )
            unanswered = all(self.asked.get(s, (0, 0.0))[0] >= FILL_AFTER for s in hole)
            if not between or len(hole) > MAX_FILL or not unanswered:
                return
            log.debug("padding lost between frames (%d packets): filled", len(hole))
            for seq in hole:
                filler = RtpPacket(
                    payload_type=before.payload_type,
                    sequence_number=seq,
                    timestamp=before.timestamp,
                    ssrc=before.ssrc,
                )
                filler._data = b""  # type: ignore[attr-defined]  # depayloaded: nothing
                packets[seq % capacity] = filler
                self.missing.discard(seq)
            offset = end

    def _give_up(self) -> None:
        """Empty the jitter buffer, so the next packet starts it afresh, stop asking for the
        missing packets (the keyframe asked for replaces them), and wait for that keyframe."""
        if self.buffer._origin is not None:
            self.buffer.remove(self.buffer.capacity)
            self.buffer._origin = None
        self.missing.clear()
        self.asked.clear()
        self.awaiting_keyframe = True


def _start(codec: str, payload: bytes) -> str | None:
    """ "key" or "delta" when ``payload`` begins a frame (VP8) or a NAL unit (H.264), else
    None: a frame's later packet, or a codec not known here."""
    try:
        if codec == "video/vp8":
            return _vp8_start(payload)
        if codec == "video/h264":
            return _h264_start(payload)
    except IndexError:
        pass
    return None


def _vp8_start(payload: bytes) -> str | None:
    """RFC 7741: the payload descriptor's S bit and partition 0, then the P bit of the VP8
    payload header."""
    first, offset = payload[0], 1
    if not first & 0x10 or first & 0x07:
        return None
    if first & 0x80:  # extensions: picture id (one or two bytes), TL0PICIDX, TID/KEYIDX
        extensions, offset = payload[1], 2
        if extensions & 0x80:
            offset += 2 if payload[offset] & 0x80 else 1
        offset += bool(extensions & 0x40) + bool(extensions & 0x30)
    return "delta" if payload[offset] & 0x01 else "key"


def _h264_start(payload: bytes) -> str | None:
    """RFC 6184: a single NAL unit, an aggregate (STAP-A: its first unit), or a fragment's
    first part (FU-A with S); SPS or IDR begins a keyframe."""
    kind = payload[0] & 0x1F
    if kind == 24:  # STAP-A: a 2-byte size, then the first unit
        kind = payload[3] & 0x1F
    elif kind == 28:  # FU-A
        if not payload[1] & 0x80:
            return None
        kind = payload[1] & 0x1F
    elif not 1 <= kind <= 23:
        return None
    return "key" if kind in (5, 7) else "delta"


def _skip_empty_frames(decoder_queue: Any) -> None:
    put = decoder_queue.put

    def put_unless_empty(task: Any, *args: Any, **kwargs: Any) -> None:
        if task is not None and not task[1].data:
            log.debug("an empty (padding-only) video frame kept from the decoder")
            return  # nothing to decode, and it would end the decoder's stream
        put(task, *args, **kwargs)

    decoder_queue.put = put_unless_empty
