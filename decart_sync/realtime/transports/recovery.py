"""Loss recovery for aiortc's video receivers: what libwebrtc's receiver does, aiortc's does not.

aiortc's receiver asks for a retransmission only when it sees a new hole,
holds every later packet behind a hole until 512 more have arrived, hands the
decoder frames whose reference it dropped, and asks for no keyframe when a
frame cannot be decoded: over a lossy network the video stops for seconds or
for good, and a skipped frame decodes into garbage. `KeyframeRecovery` does
what libwebrtc's receiver does, for the client's receiver on the plain-WebRTC
path (the service's video to us) and the emulator's (the camera to its model).

- It asks again for missing packets, each at most once a round trip (measured
  from the requests it answered) and `MAX_ASKS` times (libwebrtc's
  NackRequester), aiortc's own requests included.
- A frame reaches the decoder only when it is a keyframe or follows the frame
  decoded before it: every packet between them arrived, or is proven to hold
  no picture (`bitstream`). Any other frame is dropped and a keyframe asked
  for: the picture freezes rather than decoding against a lost reference.
- A hole is filled (with empty packets, so the frames behind it go on) only
  when it provably held no picture data. libwebrtc pads on the video SSRC
  when no RTX was negotiated (the LiveKit client's publisher does, to probe
  the bandwidth), and never resends padding. Its padding-only packets follow
  a frame's last packet and carry that frame's RTP timestamp: a hole between
  such a packet (or the frame's last) and a padding packet of the same
  timestamp held padding only. A hole between a frame's last packet and the
  first of a frame that provably follows it (VP8's picture id, H.264's
  frame_num) held nothing the decoder needs either.
- When packets keep coming but no frame has been decoded for `STALL`
  seconds while a missing packet went unanswered `GIVE_UP_AFTER` times, over
  `GIVE_UP_WAIT` seconds or six round trips at least (a sender refuses a
  request that comes within its own estimate of a round trip of the packet's
  last sending, and queues its retransmissions behind media; libwebrtc's own
  receiver waits longer still), or for `LONG_STALL` seconds after frames went
  to a decoder that gave nothing back, it goes on from a keyframe already
  held, or drops what the receiver holds, asks for a keyframe (again every
  `KEYFRAME_AGAIN` seconds until one begins) and keeps every packet from the
  jitter buffer until one does (VP8, H.264).
- Every frame complete in the jitter buffer goes to the decoder at once, not
  one per arriving packet as aiortc's does (frames behind a mended hole stayed
  behind when the sender sent one packet per frame: latency after a blackout).
- It keeps empty frames from the decoder: FFmpeg takes an empty packet as
  end of stream, and every later frame failed with "End of file".

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
from collections import OrderedDict, deque
from typing import Any

from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

from . import holes
from .bitstream import H264Reader, Start, follows, vp8_start

log = logging.getLogger(__name__)

CHECK = 0.05  # how often a receiver is looked at
RTT = 0.1  # the round trip assumed until one is measured
MIN_RENACK = 0.03  # seconds before the same packet is asked for again, at least
MAX_ASKS = 10
STALL = 0.2  # seconds without a decoded frame, with a packet unanswered GIVE_UP_AFTER times...
GIVE_UP_AFTER = 3
GIVE_UP_WAIT = 0.5  # ... over this long since first asked, or six round trips
LONG_STALL = 1.0  # ... or frames decoded into nothing (a keyframe still arriving, however
# slowly over a narrow link, is left to finish: asking for another would start it anew)
KEYFRAME_AGAIN = 0.5  # seconds before a keyframe asked for that has not begun is asked again
KEPT_STARTS = 512  # frame starts remembered (by RTP timestamp)
HELD = 512  # packets kept while waiting for a keyframe, in case they follow its first
KEYFRAMES_KNOWN = ("video/vp8", "video/h264")  # whose frames `bitstream` reads


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
        self.asked: dict[int, tuple[int, float, float]] = {}  # seq: requests, last, first
        self.round_trips: deque[float] = deque(maxlen=16)  # request to answer, seconds
        self.awaiting_keyframe = False
        self.keyframe_asked = float("-inf")
        self.next_seq: int | None = None  # the first packet after the last frame decoded
        self.starts: OrderedDict[int, tuple[int, Start]] = OrderedDict()  # ts: (seq, start)
        self.ready: list[tuple[Any, Any]] = []  # (codec, frame) for the decoder, in order
        self.held: deque[RtpPacket] = deque(maxlen=HELD)  # packets before a keyframe came
        self.broken = False  # a frame had to be dropped: go on from a keyframe
        self.ssrc: int | None = None
        self.last_packet = self.last_frame = time.monotonic()
        self.last_handed = 0.0  # when a frame last went to the decoder
        self._codecs: dict[int, Any] = {}
        self._h264 = H264Reader()

    def _install(self) -> None:
        """Hook into the receiver; from the task, as its track exists only once answered."""
        receiver = self.receiver
        self.buffer = receiver._RTCRtpReceiver__jitter_buffer
        self.missing = receiver._RTCRtpReceiver__nack_generator.missing
        self._codecs = receiver._RTCRtpReceiver__codecs
        queue = receiver._RTCRtpReceiver__decoder_queue
        mapper = receiver._RTCRtpReceiver__timestamp_mapper
        self._send_nack = receiver._send_rtcp_nack
        handle, add, recv = receiver._handle_rtp_packet, self.buffer.add, receiver.track.recv
        remove_frame = self.buffer._remove_frame
        receiver._send_rtcp_nack = self.nack

        def flush() -> None:
            if self.ready:
                self.last_handed = time.monotonic()
            for codec, frame in self.ready:  # after aiortc's handler, in order
                frame.timestamp = mapper.map(frame.timestamp)
                queue.put((codec, frame))
            self.ready.clear()

        self._flush = flush

        async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.last_packet, self.ssrc = time.monotonic(), packet.ssrc
            await handle(packet, arrival_time_ms=arrival_time_ms)
            flush()
            if self.awaiting_keyframe:
                await self._ask_keyframe()

        def add_gated(packet: RtpPacket) -> tuple[bool, Any]:
            """Every media packet (retransmissions unwrapped), after aiortc's NACK
            generator: the frames it completes go to `ready`, not back to aiortc."""
            self._arrived(packet)
            later: list[RtpPacket] = []
            if self.awaiting_keyframe:
                start = self._start_of(packet)
                if self._codec(packet) in KEYFRAMES_KNOWN and (start is None or not start.key):
                    self.held.append(packet)  # before the keyframe, or a part of it, reordered
                    return False, None
                self.awaiting_keyframe = False
                self.next_seq = None  # the keyframe needs no predecessor
                seq = packet.sequence_number
                self.missing.difference_update([s for s in self.missing if not uint16_gt(s, seq)])
                later = sorted(
                    (p for p in self.held if uint16_gt(p.sequence_number, seq)),
                    key=lambda p: uint16_add(p.sequence_number, -seq),
                )
                self.held.clear()
            pli, _ = add(packet)
            for held in later:
                add(held)
            self._collect()
            if self.missing:
                self._fill_holes()
            return pli, None

        def gated_remove_frame(sequence_number: int) -> Any:
            """aiortc's next complete frame, if it may be decoded (see the module's text)."""
            first = self.buffer._origin
            if first is None:
                return None
            head = self.buffer._packets[first % self.buffer.capacity]
            frame = remove_frame(sequence_number)
            if frame is None:
                return None
            continuous = first == self.next_seq
            if not frame.data:  # padding only: FFmpeg would take it for the end of stream
                if continuous:
                    self.next_seq = self.buffer._origin
                return frame
            start = self._start_of(head)
            known = self._codec(head) in KEYFRAMES_KNOWN
            if not continuous and known and (start is None or not start.key):
                log.debug("a video frame whose reference was lost dropped; keyframe asked")
                self.broken = True
                return None
            self.next_seq = self.buffer._origin
            self.ready.append((self._codecs.get(head.payload_type), frame))
            return frame

        receiver._handle_rtp_packet = handle_rtp_packet
        self.buffer.add = add_gated
        self.buffer._remove_frame = gated_remove_frame

        async def watched_recv() -> Any:
            frame = await recv()
            self.last_frame = time.monotonic()
            return frame

        receiver.track.recv = watched_recv
        self.last_packet = self.last_frame = time.monotonic()

    def _codec(self, packet: RtpPacket) -> str:
        codec = self._codecs.get(packet.payload_type)
        return "" if codec is None else codec.mimeType.lower()

    def _start_of(self, packet: RtpPacket) -> Start | None:
        """What ``packet`` tells of the frame it begins (None: it begins none provably)."""
        if not packet.payload:
            return None
        kept = self.starts.get(packet.timestamp)
        if kept is not None and kept[0] == packet.sequence_number:
            return kept[1]
        codec = self._codec(packet)
        if codec == "video/vp8":
            return vp8_start(packet.payload)
        if codec == "video/h264":
            return self._h264.start(packet.payload)
        return None

    def _arrived(self, packet: RtpPacket) -> None:
        """Learn from a packet: a round trip when it answers a request, the frame it begins."""
        asked = self.asked.pop(packet.sequence_number, None)
        if asked is not None:  # from the first request: the answer to a later one is unknown
            self.round_trips.append(min(time.monotonic() - asked[2], 1.0))
        if self._codec(packet) == "video/h264":
            self._h264.learn(packet.payload)
        start = self._start_of(packet)
        if start is not None:
            self.starts[packet.timestamp] = (packet.sequence_number, start)
            while len(self.starts) > KEPT_STARTS:
                self.starts.popitem(last=False)

    def _collect(self) -> None:
        """Every frame the jitter buffer now has complete, through the gate."""
        while self.buffer._origin is not None:
            frame = self.buffer._remove_frame(self.buffer._origin)
            if self.broken:
                self.broken = False
                self._give_up()
                continue
            if frame is None:
                return

    @property
    def rtt(self) -> float:
        """The round trip, from the requests answered lately: their third quartile, so
        that a packet is not asked for again while its answer is merely delayed by
        jitter (nor given up after a few such requests)."""
        if not self.round_trips:
            return RTT
        return sorted(self.round_trips)[len(self.round_trips) * 3 // 4]

    async def nack(self, ssrc: int, lost: list[int]) -> None:
        """Ask for the packets not asked for within a round trip, up to `MAX_ASKS`."""
        if self.awaiting_keyframe:
            return  # what is missing now precedes the keyframe asked for
        now = time.monotonic()
        again = max(MIN_RENACK, 1.2 * self.rtt)
        due = []
        for seq in lost:
            asks, when, first = self.asked.get(seq, (0, 0.0, now))
            if asks < MAX_ASKS and now - when >= again:
                self.asked[seq] = (asks + 1, now, first)
                due.append(seq)
        for seq in [seq for seq in self.asked if seq not in self.missing]:
            del self.asked[seq]
        if due:
            await self._send_nack(ssrc, due)

    async def _ask_keyframe(self) -> None:
        now = time.monotonic()
        if self.ssrc is not None and now - self.keyframe_asked >= KEYFRAME_AGAIN:
            self.keyframe_asked = now
            with contextlib.suppress(ConnectionError):
                await self.receiver._send_rtcp_pli(self.ssrc)

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
            if self.awaiting_keyframe:
                await self._ask_keyframe()
                continue
            # Every hole asked for, those aiortc's NACK generator never saw as missing too
            # (reordered before the first packet it counted, or before a keyframe).
            self.missing.update(holes.absent(self.buffer))
            if self.missing:
                with contextlib.suppress(ConnectionError):
                    await self.nack(self.ssrc, sorted(self.missing))
            stalled = now - self.last_frame
            failing = stalled >= LONG_STALL and self.last_handed > self.last_frame
            if stalled < STALL or not (failing or self._stuck()):
                continue
            log.debug("video input stalled with packets arriving: going on from a keyframe")
            self._give_up()
            self._collect()
            self._flush()
            self.last_frame = now  # one give-up per stall period, not one per check
            if self.awaiting_keyframe:
                await self._ask_keyframe()

    def _stuck(self) -> bool:
        """A packet the frames wait for (ahead in the jitter buffer) asked for in vain."""
        origin, capacity = self.buffer._origin, self.buffer.capacity
        if origin is None:
            return False
        since = time.monotonic() - max(GIVE_UP_WAIT, 6 * self.rtt)
        for seq in self.missing:
            asks, _, first = self.asked.get(seq, (0, 0.0, 0.0))
            if asks >= GIVE_UP_AFTER and first <= since and uint16_add(seq, -origin) < capacity:
                return True
        return False

    def _fill_holes(self) -> None:
        """Fill the holes that provably held no picture (see the module's text), from the
        first on: frames wait behind the first, and later ones cannot go before it."""
        while (hole := next(holes.holes(self.buffer), None)) is not None:
            first, last, before, after = hole
            if not self._no_picture_between(before, after, uint16_add(last, -first) + 1):
                return
            filled = holes.fill(self.buffer, first, last, before)
            self.missing.difference_update(filled)
            for seq in filled:
                self.asked.pop(seq, None)
            log.debug("a hole of %d packets without picture data filled", len(filled))
            self._collect()

    def _no_picture_between(self, before: RtpPacket, after: RtpPacket, hole: int) -> bool:
        if not (before.marker or not before.payload):
            return False  # inside a frame
        if not after.payload:  # padding: it carries the timestamp of the frame it follows
            return after.timestamp == before.timestamp
        start = self._start_of(after)
        if start is None:
            return False
        if start.key:
            return True  # whatever was lost, the keyframe needs none of it
        kept = self.starts.get(before.timestamp)
        return (
            kept is not None
            and follows(kept[1], start)
            and hole < start.modulus  # too short to hide a whole turn of the count
        )

    def _give_up(self) -> None:
        """Go on from the first keyframe the jitter buffer holds, if any; else empty it, so
        the next packet starts it afresh, stop asking for the missing packets (the keyframe
        asked for replaces them), and wait for that keyframe."""
        self.next_seq = None
        origin = self.buffer._origin
        key = holes.skip_to(self.buffer, lambda p: (s := self._start_of(p)) is not None and s.key)
        if origin is not None and key is not None:
            self.missing.difference_update(
                [seq for seq in self.missing if uint16_gt(key, seq) and not uint16_gt(origin, seq)]
            )
            return
        holes.empty(self.buffer)
        self.missing.clear()
        self.asked.clear()
        self.held.clear()
        self.awaiting_keyframe = True
