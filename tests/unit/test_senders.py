"""The emulator's video senders (emulator/senders.py): stale retransmissions, REMB; no network."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unpack_remb_fci

from decart_sync.emulator import senders


class Sender:
    """The parts of aiortc's RTCRtpSender the wrapper uses."""

    def __init__(self) -> None:
        self._ssrc = 42
        self._RTCRtpSender__rtp_history: dict[int, RtpPacket] = {}
        self.resent: list[int] = []
        self.keyframes = 0
        self.rates: list[int] = []

        async def retransmit(seq: int) -> None:
            self.resent.append(seq)

        async def handle(packet: Any) -> None:
            self.rates.append(unpack_remb_fci(packet.fci)[0])

        def send_keyframe() -> None:
            self.keyframes += 1

        self._retransmit, self._handle_rtcp_packet = retransmit, handle
        self._send_keyframe = send_keyframe


def _tamed() -> Sender:
    sender = Sender()
    pc = SimpleNamespace(getTransceivers=lambda: [SimpleNamespace(kind="video", sender=sender)])
    senders.tame_senders(pc)
    senders.tame_senders(pc)  # once only
    return sender


def test_only_fresh_packets_are_resent_and_stale_ones_bring_a_keyframe() -> None:
    sender = _tamed()
    for seq in range(10):  # a packet a tenth of a second
        packet = RtpPacket(sequence_number=seq, timestamp=9000 * seq)
        sender._RTCRtpSender__rtp_history[seq] = packet
    asyncio.run(sender._retransmit(8))
    asyncio.run(sender._retransmit(2))  # 0.7 s before the newest: refused
    asyncio.run(sender._retransmit(1))  # refused too, the keyframe is on its way
    asyncio.run(sender._retransmit(500))  # gone from the history
    assert sender.resent == [8] and sender.keyframes == 1


def test_the_encoder_follows_a_lower_estimate_at_once_and_a_higher_one_seldom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sender = _tamed()
    clock = [10.0]
    monkeypatch.setattr(senders, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    def remb(bitrate: int) -> None:
        packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0)
        packet.fci = pack_remb_fci(bitrate, [42])
        asyncio.run(sender._handle_rtcp_packet(packet))

    for bitrate in (500_000, 530_000, 600_000, 650_000):  # a second apart
        remb(bitrate)
        clock[0] += 1.0
    remb(400_000)  # down: at once
    clock[0] += senders.RAISE_EVERY
    remb(700_000)
    assert [round(r, -3) for r in sender.rates] == [
        500_000,
        500_000,
        600_000,
        600_000,
        400_000,
        700_000,
    ]
