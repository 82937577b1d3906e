"""Loss recovery's decisions (transports/recovery.py, bitstream.py) on aiortc's own jitter
buffer and NACK generator, no network.

tests/e2e/test_network_faults.py drives it over real sessions under loss.
"""

from __future__ import annotations

import asyncio
import fractions
import queue
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
import pytest
from aiortc.codecs import depayload, get_encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import NackGenerator, TimestampMapper
from aiortc.rtp import RtpPacket

from decart_sync.realtime.transports import holes, recovery
from decart_sync.realtime.transports.bitstream import H264Reader, Start, follows, vp8_start
from decart_sync.realtime.transports.recovery import _Watch

VP8, H264 = 96, 97
CODECS = {
    VP8: RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=VP8),
    H264: RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=H264),
}


def vp8(picture_id: int, key: bool = False, first: bool = True) -> bytes:
    """A VP8 payload: descriptor with a 15-bit picture id, then the payload header."""
    descriptor = bytes([0x90 if first else 0x80, 0x80, 0x80 | picture_id >> 8, picture_id & 0xFF])
    return descriptor + bytes([0x00 if key else 0x01]) + b"picture"


def bits_to_bytes(bits: str) -> bytes:
    bits += "1" + "0" * (-(len(bits) + 1) % 8)  # rbsp stop bit, aligned
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


SPS = b"\x67\x42\xc0\x1f" + bits_to_bytes("1" + "1")  # id 0, log2_max_frame_num 4
PPS = b"\x68" + bits_to_bytes("1" + "1")  # id 0, of SPS 0


def h264_slice(frame_num: int, first_mb: int = 0, reference: bool = True) -> bytes:
    """A P slice's NAL unit: first_mb_in_slice, slice_type 0, pps 0, frame_num (4 bits)."""
    first = "1" if first_mb == 0 else "010"  # ue(0) or ue(1)
    header = 0x41 if reference else 0x01
    return bytes([header]) + bits_to_bytes(first + "1" + "1" + format(frame_num, "04b"))


def stap_a(*units: bytes) -> bytes:
    return b"\x78" + b"".join(len(u).to_bytes(2, "big") + u for u in units)


def test_frame_starts_of_vp8() -> None:
    assert vp8_start(vp8(5, key=True)) == Start(key=True, number=5, modulus=1 << 15)
    assert vp8_start(vp8(6)) == Start(key=False, number=6, modulus=1 << 15)
    assert vp8_start(vp8(6, first=False)) is None  # a frame's later packet
    assert vp8_start(bytes([0x10, 0x01])) == Start(key=False)  # no picture id: no number
    assert vp8_start(bytes([0x90, 0x80, 0x07, 0x01])) == Start(False, 7, 1 << 7)  # 7-bit id
    assert vp8_start(b"") is None


def test_frame_starts_of_h264() -> None:
    reader = H264Reader()
    assert reader.start(h264_slice(3)) == Start(key=False)  # no parameter sets yet: no number
    keyframe = stap_a(SPS, PPS)
    reader.learn(keyframe)
    assert reader.start(keyframe) == Start(key=True, number=0, modulus=16)
    assert reader.start(h264_slice(3)) == Start(key=False, number=3, modulus=16)
    assert reader.start(h264_slice(3, first_mb=1)) is None  # a later slice of the frame
    non_reference = reader.start(h264_slice(4, reference=False))
    assert non_reference == Start(key=False, number=4, modulus=16, reference=False)
    fu_a_first = bytes([0x5C, 0x81]) + h264_slice(5)[1:]  # FU-A, S bit, of a P slice
    assert reader.start(fu_a_first) == Start(key=False, number=5, modulus=16)
    assert reader.start(bytes([0x5C, 0x41]) + b"rest") is None  # FU-A, a later part
    assert reader.start(b"\x65\x88") is None  # an IDR slice: its parameter sets may be lost
    assert reader.start(PPS) is None  # parameter sets may follow an SPS
    assert reader.start(stap_a(b"\x09\xf0", SPS, PPS)) == Start(True, 0, 16)  # a delimiter first
    assert reader.start(b"\x09\xf0") == Start(key=False)  # a delimiter always begins a frame
    assert reader.start(b"") is None


def test_what_follows_what() -> None:
    reference = Start(key=False, number=15, modulus=16)
    assert follows(reference, Start(key=False, number=0, modulus=16))  # frame_num wraps
    assert not follows(reference, Start(key=False, number=1, modulus=16))  # one lost
    non_reference = Start(key=False, number=4, modulus=16, reference=False)
    assert follows(non_reference, Start(key=False, number=4, modulus=16))
    assert not follows(Start(key=False), Start(key=False))  # numbers unknown: not proven


@pytest.mark.parametrize("name", ["VP8", "H264"])
def test_real_encoders_frames_are_read_as_sent(name: str) -> None:
    """aiortc's encoders (libvpx, x264): each frame's first packet, and only it, begins
    the frame; each frame follows the one before; a keyframe begins as one."""
    encoder = get_encoder(CODECS[VP8 if name == "VP8" else H264])
    reader, before = H264Reader(), None
    rng = np.random.default_rng(0)
    for index in range(12):
        picture = rng.integers(0, 255, (96, 160, 3), np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=index == 6)
        starts = []
        for payload in payloads:
            reader.learn(payload)
            starts.append(vp8_start(payload) if name == "VP8" else reader.start(payload))
        first = starts[0]
        assert first is not None and first.number is not None, starts
        assert first.key == (index in (0, 6))
        if name == "VP8":  # x264 starts the IDR slice after its parameter sets' packet too
            assert starts[1:] == [None] * (len(starts) - 1)
        assert before is None or first.key or follows(before, first), (before, first)
        before = first


class Receiver:
    """aiortc's receiver parts that recovery hooks into, fed as aiortc's handler does."""

    def __init__(self) -> None:
        self._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=128, is_video=True)
        self._RTCRtpReceiver__nack_generator = NackGenerator()
        self._RTCRtpReceiver__codecs = CODECS
        self._RTCRtpReceiver__decoder_queue: queue.Queue[Any] = queue.Queue()
        self._RTCRtpReceiver__timestamp_mapper = TimestampMapper()
        self.track = SimpleNamespace(recv=lambda: None)
        self.plis = 0

        async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
            pass

        async def send_nack(ssrc: int, lost: list[int]) -> None:
            pass

        async def send_pli(ssrc: int) -> None:
            self.plis += 1

        self._handle_rtp_packet = handle
        self._send_rtcp_nack = send_nack
        self._send_rtcp_pli = send_pli
        self.watch = _Watch(self)
        self.watch._install()
        self.watch.ssrc = 1

    def feed(self, seq: int, ts: int, payload: bytes, pt: int = VP8, marker: bool = True) -> None:
        packet = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, marker=marker)
        packet.payload = payload
        packet._data = depayload(CODECS[pt], payload) if payload else b""  # type: ignore[attr-defined]
        self._RTCRtpReceiver__nack_generator.add(packet)
        self._RTCRtpReceiver__jitter_buffer.add(packet)
        self.watch._flush()

    def decoded(self) -> list[bytes]:
        found = []
        while not self._RTCRtpReceiver__decoder_queue.empty():
            found.append(self._RTCRtpReceiver__decoder_queue.get()[1].data)
        return found


def test_lost_padding_of_the_frame_before_is_filled() -> None:
    receiver = Receiver()
    receiver.feed(100, 1000, vp8(1, key=True))
    receiver.feed(101, 1000, b"", marker=False)  # padding: the timestamp of the frame before
    # 102, padding too, lost: the next padding packet proves it.
    receiver.feed(103, 1000, b"", marker=False)
    receiver.feed(104, 4000, vp8(2, first=False))  # not a start: proves nothing, but after
    receiver.feed(105, 7000, vp8(3))
    assert receiver.watch.missing == set()
    assert len(receiver.decoded()) == 2  # the keyframe, and 104's frame (its start, 104)


def test_a_hole_before_a_frame_that_follows_is_filled() -> None:
    receiver = Receiver()
    receiver.feed(100, 1000, vp8(1, key=True))
    receiver.feed(102, 4000, vp8(2))  # picture 2 follows 1: 101 held no picture
    receiver.feed(103, 7000, vp8(3))
    assert len(receiver.decoded()) == 2


def test_holes_that_may_hold_a_picture_wait() -> None:
    receiver = Receiver()
    receiver.feed(100, 1000, vp8(1, key=True))
    receiver.feed(102, 7000, vp8(3))  # picture 2 lost: 101 held it
    receiver.feed(103, 10000, vp8(4))
    assert receiver.watch.missing == {101}
    receiver.feed(104, 10000, b"", marker=False)
    receiver.feed(106, 20000, b"", marker=False)  # padding of another frame: proves nothing
    assert receiver.watch.missing == {101, 105}
    assert len(receiver.decoded()) == 0  # the keyframe waits for 102 to end it
    receiver.feed(101, 4000, vp8(2))  # retransmitted
    assert receiver.watch.missing == {105}
    assert len(receiver.decoded()) == 3
    # Inside a frame: the packet before the hole did not end one.
    receiver = Receiver()
    receiver.feed(200, 1000, vp8(1, key=True), marker=False)
    receiver.feed(202, 4000, vp8(2))
    receiver.feed(203, 7000, vp8(3))
    assert receiver.watch.missing == {201} and receiver.decoded() == []


def test_a_frame_whose_reference_was_lost_never_reaches_the_decoder() -> None:
    receiver = Receiver()
    watch = receiver.watch
    receiver.feed(100, 1000, vp8(1, key=True))
    receiver.feed(101, 4000, vp8(2))
    receiver.feed(103, 10000, vp8(4))  # picture 3 (102) is lost for good
    receiver.feed(104, 13000, vp8(5))
    assert len(receiver.decoded()) == 1
    watch._give_up()  # the stall gave up on 102: no keyframe held, so one is asked for
    watch._collect()
    assert watch.awaiting_keyframe and receiver.decoded() == []
    asyncio.run(watch._ask_keyframe())
    asyncio.run(watch._ask_keyframe())  # not again so soon
    assert receiver.plis == 1
    receiver.feed(105, 16000, vp8(6))  # a delta frame: no good without 3
    receiver.feed(107, 22000, vp8(8, key=True))
    receiver.feed(108, 25000, vp8(9))
    assert receiver.decoded() == [depayload(CODECS[VP8], vp8(8, key=True))]


def test_aiortc_dropping_frames_to_make_room_breaks_the_chain() -> None:
    receiver = Receiver()
    receiver.feed(1000, 1000, vp8(1, key=True))
    receiver.feed(1001, 4000, vp8(2))
    # 1002 (picture 3) lost; aiortc's buffer (128 here) overflows and drops frames.
    for k in range(3, 140):
        receiver.feed(1000 + k, 1000 + 3000 * k, vp8(k + 1))
    assert len(receiver.decoded()) == 1  # only the keyframe: the rest lost their reference
    assert receiver.watch.awaiting_keyframe


def test_requests_are_paced_by_the_round_trip_and_limited(monkeypatch: Any) -> None:
    receiver = Receiver()
    watch = receiver.watch
    sent: list[list[int]] = []

    async def send(ssrc: int, lost: list[int]) -> None:
        sent.append(lost)

    async def ask() -> None:
        await watch.nack(1, sorted(watch.missing))

    watch._send_nack = send
    watch.missing.update({5, 6})
    clock = [100.0]
    monkeypatch.setattr(recovery, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    asyncio.run(ask())
    asyncio.run(ask())  # at once again: nothing
    assert watch.rtt == recovery.RTT  # none measured yet
    clock[0] += 1.5 * recovery.RTT
    watch.missing.discard(6)  # it came
    receiver.feed(6, 1000, b"")
    assert watch.round_trips[-1] == pytest.approx(1.5 * recovery.RTT)
    asyncio.run(ask())
    for _ in range(2 * recovery.MAX_ASKS):
        clock[0] += 0.5 * watch.rtt  # too soon: a round trip has not passed
        asyncio.run(ask())
        clock[0] += 1.0 * watch.rtt
        asyncio.run(ask())
    assert sent[:2] == [[5, 6], [5]]
    assert sum(5 in lost for lost in sent) == recovery.MAX_ASKS
    assert 6 not in watch.asked
    watch.awaiting_keyframe = True  # what is missing precedes the keyframe asked for
    watch.missing.add(7)
    asyncio.run(ask())
    assert 7 not in watch.asked


def test_a_hole_is_given_up_only_after_requests_over_several_round_trips(monkeypatch: Any) -> None:
    receiver = Receiver()
    watch = receiver.watch
    receiver.feed(100, 1000, vp8(1, key=True), marker=False)
    receiver.feed(102, 4000, vp8(2))
    clock = [50.0]
    monkeypatch.setattr(recovery, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    watch.asked[101] = (recovery.GIVE_UP_AFTER, clock[0], clock[0] - 0.3)
    assert not watch._stuck()  # asked often, but its answer may still be on its way
    clock[0] += recovery.GIVE_UP_WAIT
    assert watch._stuck()
    watch.round_trips.extend([0.2] * 4)  # a longer round trip: six of them first
    assert not watch._stuck()


def test_packets_of_the_keyframe_that_came_before_its_first_are_kept() -> None:
    receiver = Receiver()
    watch = receiver.watch
    watch._give_up()  # waiting for a keyframe
    receiver.feed(52, 9000, vp8(4, first=False))  # reordered: the keyframe's end first
    receiver.feed(50, 6000, vp8(2))  # a frame before it: given up
    receiver.feed(51, 9000, vp8(4, key=True), marker=False)
    receiver.feed(53, 12000, vp8(5))
    assert len(receiver.decoded()) == 1 and not watch.awaiting_keyframe


def test_holes_aiortc_never_counted_missing_are_found() -> None:
    receiver = Receiver()
    watch = receiver.watch
    watch._give_up()
    receiver.feed(103, 1000, vp8(1, first=False))  # aiortc's NACK generator starts here
    receiver.feed(100, 1000, vp8(1, key=True), marker=False)  # reordered: 101, 102 unseen
    assert watch.missing == set()
    assert holes.absent(watch.buffer) == [101, 102]  # the watch's loop asks for them
