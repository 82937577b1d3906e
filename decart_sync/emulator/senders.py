"""The emulator's video senders: no stale retransmissions, few encoder restarts.

aiortc's sender answers a retransmission request from its last 128 packets,
however old: at 320x192 that is five seconds of video, and after a 3 s
blackout it sent the client some seventy packets made a second or more
before. A picture that old is no use to a live viewer, and a receiver that
decodes it late may take the lateness for its playout delay (libwebrtc
lowers that by 100 ms a second at most). So the sender refuses it and sends
a keyframe instead, at once: a receiver asking for packets that old has lost
the picture, and libwebrtc's asks for a keyframe itself only after 3 s
without a decodable frame (the picture came back 3 s after the link did).

aiortc's VP8 encoder starts afresh, with a keyframe, whenever the receiver's
estimate (REMB) moves by a tenth: under loss the client's estimate climbs a
few percent a second, which made a 1280x720 keyframe every second and a half
(8 restarts in 12 s; 1 to 3 now). A libwebrtc sender changes its rate
without one. Here a lower estimate is followed at once, a higher one at most
every `RAISE_EVERY` seconds.

It wraps aiortc 1.16's private ``_retransmit`` and ``_handle_rtcp_packet``,
reads its packet history (``_RTCRtpSender__rtp_history``) and asks
``_send_keyframe``; a later aiortc without them is left alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTP_HISTORY_SIZE,
    RtcpPsfbPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from aiortc.utils import uint16_gt

log = logging.getLogger(__name__)

RESEND_WITHIN = 0.5  # seconds of media time: older packets are not sent again
KEYFRAME_EVERY = 0.5  # seconds: at most one keyframe for the requests refused in that time
RAISE_EVERY = 5.0  # seconds between rises of the encoder's rate (each restarts it)
CHANGE = 0.1  # a change aiortc's encoder restarts for
VIDEO_CLOCK = 90_000
MARK = "_decart_sender"


def tame_senders(pc: Any) -> None:
    """Wrap every video sender of ``pc`` not wrapped yet."""
    for transceiver in pc.getTransceivers():
        sender = transceiver.sender
        if transceiver.kind != "video" or getattr(sender, MARK, None) is not None:
            continue
        try:
            tamed = _Sender(sender)
        except AttributeError as exc:
            log.warning("aiortc's sender has changed (%s): left as it is", exc)
            return
        setattr(sender, MARK, tamed)
        sender._retransmit = tamed.retransmit
        sender._handle_rtcp_packet = tamed.handle_rtcp_packet


class _Sender:
    def __init__(self, sender: Any) -> None:
        self._ssrc = sender._ssrc
        self._history: dict[int, Any] = sender._RTCRtpSender__rtp_history
        self._retransmit = sender._retransmit
        self._handle = sender._handle_rtcp_packet
        self._send_keyframe = sender._send_keyframe
        self._refreshed = float("-inf")  # when a keyframe last replaced refused packets
        self._rate: int | None = None  # the estimate the encoder was last given
        self._raised = float("-inf")

    async def retransmit(self, sequence_number: int) -> None:
        packet = self._history.get(sequence_number % RTP_HISTORY_SIZE)
        if packet is not None and packet.sequence_number == sequence_number:
            newest = packet
            for other in self._history.values():
                if uint16_gt(other.sequence_number, newest.sequence_number):
                    newest = other
            age = ((newest.timestamp - packet.timestamp) & 0xFFFFFFFF) / VIDEO_CLOCK
            if age <= RESEND_WITHIN:
                await self._retransmit(sequence_number)
                return
        now = time.monotonic()  # too old, or gone from the history: the picture is lost
        if now - self._refreshed >= KEYFRAME_EVERY:
            self._refreshed = now
            self._send_keyframe()

    async def handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                bitrate, ssrcs = 0, []
            if self._ssrc in ssrcs:
                packet.fci = pack_remb_fci(self._held(bitrate), ssrcs)
        await self._handle(packet)

    def _held(self, bitrate: int) -> int:
        """The rate to give the encoder for an estimate of ``bitrate``."""
        now = time.monotonic()
        rate = self._rate
        if rate is None or bitrate < rate * (1 - CHANGE):
            rate = bitrate
        elif bitrate > rate * (1 + CHANGE) and now - self._raised >= RAISE_EVERY:
            rate, self._raised = bitrate, now
        self._rate = rate
        return rate
