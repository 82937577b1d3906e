"""The emulator's video senders resend only packets fresh enough to be shown.

aiortc's sender answers a retransmission request from its last 128 packets,
however old: at 320x192 that is five seconds of video, and after a 3 s
blackout it sent the client some seventy packets made a second or more
before. A picture that old is no use to a live viewer, and a receiver that
decodes it late may take the lateness for its playout delay (libwebrtc
lowers that by 100 ms a second at most). So the sender refuses it and sends
a keyframe instead, at once: a receiver asking for packets that old has lost
the picture, and libwebrtc's asks for a keyframe itself only after 3 s
without a decodable frame (the picture came back 3 s after the link did).

It wraps aiortc 1.16's private ``_retransmit`` and reads its packet history
(``_RTCRtpSender__rtp_history``), and asks ``_send_keyframe``; a later aiortc
without them is left alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiortc.rtp import RTP_HISTORY_SIZE
from aiortc.utils import uint16_gt

log = logging.getLogger(__name__)

RESEND_WITHIN = 0.5  # seconds of media time: older packets are not sent again
KEYFRAME_EVERY = 0.5  # seconds: at most one keyframe for the requests refused in that time
VIDEO_CLOCK = 90_000

MARK = "_decart_resends_fresh"


def resend_fresh_only(pc: Any) -> None:
    """Limit the retransmissions of every video sender of ``pc`` not limited yet."""
    for transceiver in pc.getTransceivers():
        sender = transceiver.sender
        if transceiver.kind != "video" or getattr(sender, MARK, False):
            continue
        try:
            history: dict[int, Any] = sender._RTCRtpSender__rtp_history
            retransmit, send_keyframe = sender._retransmit, sender._send_keyframe
        except AttributeError as exc:
            log.warning("aiortc's sender has changed (%s): it resends whatever it has", exc)
            return
        setattr(sender, MARK, True)
        sender._retransmit = _fresh(history, retransmit, send_keyframe)


def _fresh(history: dict[int, Any], retransmit: Any, send_keyframe: Any) -> Any:
    refreshed = [float("-inf")]  # when a keyframe last replaced refused packets

    async def retransmit_if_fresh(sequence_number: int) -> None:
        packet = history.get(sequence_number % RTP_HISTORY_SIZE)
        if packet is not None and packet.sequence_number == sequence_number:
            newest = packet
            for other in history.values():
                if uint16_gt(other.sequence_number, newest.sequence_number):
                    newest = other
            age = ((newest.timestamp - packet.timestamp) & 0xFFFFFFFF) / VIDEO_CLOCK
            if age <= RESEND_WITHIN:
                await retransmit(sequence_number)
                return
        now = time.monotonic()  # too old, or gone from the history: the picture is lost
        if now - refreshed[0] >= KEYFRAME_EVERY:
            refreshed[0] = now
            send_keyframe()

    return retransmit_if_fresh
