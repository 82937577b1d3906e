"""aiortc's jitter buffer seen as packets and holes, for `transports.recovery`.

aiortc 1.16's ``JitterBuffer`` keeps packets in a ring (``_packets``) from the
sequence number ``_origin`` on, and hands out a frame once every packet from
the origin to the next frame's first is there. These functions read and edit
that ring: the holes frames wait behind, filling one, and going on from a
later packet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add


def holes(buffer: Any) -> Iterator[tuple[int, int, RtpPacket, RtpPacket]]:
    """Each hole from the origin on: its first and last sequence numbers, and the packets
    just before and after it (a hole before the first packet held, or after the last,
    is not one)."""
    origin, packets, capacity = buffer._origin, buffer._packets, buffer.capacity
    if origin is None:
        return
    before: RtpPacket | None = None
    offset = 0
    while offset < capacity:
        packet = packets[uint16_add(origin, offset) % capacity]
        if packet is not None:
            before, offset = packet, offset + 1
            continue
        end = offset + 1
        while end < capacity and packets[uint16_add(origin, end) % capacity] is None:
            end += 1
        if before is None or end == capacity:
            return
        yield (
            uint16_add(origin, offset),
            uint16_add(origin, end - 1),
            before,
            packets[uint16_add(origin, end) % capacity],
        )
        offset = end


def fill(buffer: Any, first: int, last: int, before: RtpPacket) -> list[int]:
    """Fill a hole with empty packets of the frame before it; their sequence numbers."""
    filled = list(_span(first, last))
    for seq in filled:
        filler = RtpPacket(
            payload_type=before.payload_type,
            sequence_number=seq,
            timestamp=before.timestamp,
            ssrc=before.ssrc,
        )
        filler._data = b""  # type: ignore[attr-defined]  # depayloaded: nothing
        buffer._packets[seq % buffer.capacity] = filler
    return filled


def absent(buffer: Any) -> list[int]:
    """Every sequence number the buffer lacks between its origin and its newest packet."""
    return [seq for first, last, _, _ in holes(buffer) for seq in _span(first, last)]


def skip_to(buffer: Any, wanted: Callable[[RtpPacket], bool]) -> int | None:
    """Drop the packets before the first held one that is ``wanted`` (not the origin's);
    its sequence number, or None (nothing dropped)."""
    origin = buffer._origin
    if origin is None:
        return None
    for offset in range(1, buffer.capacity):
        packet = buffer._packets[uint16_add(origin, offset) % buffer.capacity]
        if packet is not None and wanted(packet):
            buffer.remove(offset)
            return int(packet.sequence_number)
    return None


def empty(buffer: Any) -> None:
    """Drop everything: the next packet added becomes the origin."""
    if buffer._origin is not None:
        buffer.remove(buffer.capacity)
        buffer._origin = None


def _span(first: int, last: int) -> Iterator[int]:
    seq = first
    while True:
        yield seq
        if seq == last:
            return
        seq = uint16_add(seq, 1)
