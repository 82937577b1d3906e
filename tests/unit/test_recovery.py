"""Loss recovery's decisions (transports/recovery.py) on aiortc's own jitter buffer, no network.

tests/e2e/test_network_faults.py drives it over real sessions under loss.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from decart_sync.realtime.transports import recovery
from decart_sync.realtime.transports.recovery import _start, _Watch

H264 = 96
VP8_KEY = bytes([0x10, 0x00]) + b"key"  # S bit, partition 0; P bit 0: a keyframe
VP8_DELTA = bytes([0x10, 0x01]) + b"delta"
VP8_MIDDLE = bytes([0x00, 0x01]) + b"rest"  # a frame's later packet


def test_frame_starts_of_vp8_and_h264() -> None:
    assert _start("video/vp8", VP8_KEY) == "key"
    assert _start("video/vp8", VP8_DELTA) == "delta"
    assert _start("video/vp8", VP8_MIDDLE) is None
    # With extensions: X, then I (a two-byte picture id) and L (TL0PICIDX).
    assert _start("video/vp8", bytes([0x90, 0xC0, 0x81, 0x02, 0x07, 0x00])) == "key"
    assert _start("video/h264", bytes([0x65, 0x88])) == "key"  # an IDR slice
    assert _start("video/h264", bytes([0x41, 0x9A])) == "delta"  # a slice of a P frame
    assert _start("video/h264", bytes([0x18, 0x00, 0x05, 0x67])) == "key"  # STAP-A, SPS first
    assert _start("video/h264", bytes([0x7C, 0x85])) == "key"  # FU-A, S bit, of an IDR
    assert _start("video/h264", bytes([0x7C, 0x05])) is None  # FU-A, a later part
    assert _start("video/h264", b"") is None
    assert _start("video/vp9", VP8_KEY) is None  # unknown here: no decision


def _packet(seq: int, ts: int, payload: bytes, marker: bool = False) -> RtpPacket:
    packet = RtpPacket(payload_type=H264, sequence_number=seq, timestamp=ts, marker=marker)
    packet.payload = payload
    packet._data = payload  # type: ignore[attr-defined]  # as depayloaded
    return packet


def _watch(asks: dict[int, int]) -> tuple[_Watch, JitterBuffer]:
    watch = _Watch(SimpleNamespace())
    watch.buffer = buffer = JitterBuffer(capacity=64, is_video=True)
    watch._codecs = {H264: SimpleNamespace(mimeType="video/H264")}
    watch.asked = {seq: (count, 0.0) for seq, count in asks.items()}
    watch.missing = set(asks)
    watch.padded = True
    return watch, buffer


def test_lost_padding_between_frames_is_filled_once_asked_for_in_vain() -> None:
    watch, buffer = _watch({101: recovery.FILL_AFTER})
    assert buffer.add(_packet(100, 1000, b"\x41frame-one", marker=True)) == (False, None)
    # 101 (padding) lost; 102 begins the next frame: frame one waits behind the hole.
    assert buffer.add(_packet(102, 4000, b"\x41frame-two", marker=True))[1] is None
    watch._fill_padding()
    assert 101 not in watch.missing
    frame = buffer.add(_packet(103, 7000, b"\x41frame-three", marker=True))[1]
    assert frame is not None and frame.data == b"\x41frame-one"


def test_a_hole_is_not_filled_too_soon_nor_inside_a_frame_nor_without_padding() -> None:
    # Asked for once only: a retransmission may still come.
    watch, buffer = _watch({101: recovery.FILL_AFTER - 1})
    buffer.add(_packet(100, 1000, b"\x41one", marker=True))
    buffer.add(_packet(102, 4000, b"\x41two", marker=True))
    watch._fill_padding()
    assert watch.missing == {101}
    # Inside a frame: the packet before the hole did not end one.
    watch, buffer = _watch({101: recovery.MAX_ASKS})
    buffer.add(_packet(100, 1000, b"\x7c\x81first-part"))
    buffer.add(_packet(102, 1000, b"\x7c\x41last-part", marker=True))
    watch._fill_padding()
    assert watch.missing == {101}
    # A sender that never padded (aiortc's): the hole may be a whole lost frame.
    watch, buffer = _watch({101: recovery.MAX_ASKS})
    watch.padded = False
    buffer.add(_packet(100, 1000, b"\x41one", marker=True))
    buffer.add(_packet(102, 4000, b"\x41two", marker=True))
    watch._fill_padding()
    assert watch.missing == {101}


def test_requests_are_paced_and_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    watch, _ = _watch({})
    sent: list[list[int]] = []

    async def send(ssrc: int, lost: list[int]) -> None:
        sent.append(lost)

    async def ask() -> None:
        await watch.nack(1, sorted(watch.missing))

    watch._send_nack = send
    watch.missing = {5, 6}
    clock = [100.0]
    monkeypatch.setattr(recovery, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    asyncio.run(ask())
    asyncio.run(ask())  # at once again: nothing
    clock[0] += 1.5 * recovery.RENACK
    watch.missing.discard(6)  # it came
    asyncio.run(ask())
    for _ in range(2 * recovery.MAX_ASKS):
        clock[0] += 1.5 * recovery.RENACK
        asyncio.run(ask())
    assert sent[:2] == [[5, 6], [5]]
    assert sum(5 in lost for lost in sent) == recovery.MAX_ASKS
    assert 6 not in watch.asked
    watch.awaiting_keyframe = True  # what is missing precedes the keyframe asked for
    watch.missing = {7}
    asyncio.run(ask())
    assert 7 not in watch.asked
