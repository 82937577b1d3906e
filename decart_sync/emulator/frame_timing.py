"""Frame timing through the emulator: LiveKit's packet trailer, read on input, written on output.

A LiveKit publisher that announces ``packet_trailer_features`` appends to each
encoded frame a trailer with its ``FrameMetadata``: type-length-value fields
(1: user timestamp, 8 bytes big-endian; 2: frame id, 4 bytes; 3: user data),
every byte XORed with 0xFF, then one byte holding the trailer's length (with
the five footer bytes) XORed with 0xFF, then ``b"LKTS"``. The receiving LiveKit
client strips it and hands the metadata over with the decoded frame (the
format as the JS SDK 0.1.20's frame-metadata worker writes and reads it).

The service copies the user timestamp of an input frame onto the output frame
made from it, when the client said ``client_capabilities: {frame_timing: true}``
in ``livekit_join``; so does the emulator. Input: `strip_trailers()` takes
the trailer off each assembled frame before aiortc decodes it and keeps the
timestamp by RTP timestamp, which becomes the decoded frame's ``pts``
(`stamp_of()`). Output: `stamp_output()` appends a trailer to the
encoded frames of a sender whose track's last frame carried a stamp in
``frame.opaque``. It uses aiortc 1.16's private sender and receiver parts, as
`realtime.transports.recovery` does, and so lives in the emulator only.
"""

from __future__ import annotations

import struct
import weakref
from collections import OrderedDict
from typing import Any

MAGIC = b"LKTS"
USER_TIMESTAMP, FRAME_ID, USER_DATA = 1, 2, 3
KEPT = 256  # stamps kept per track, waiting for their frame to be decoded

_stamps: weakref.WeakKeyDictionary[Any, OrderedDict[int, int]] = weakref.WeakKeyDictionary()


def parse(data: bytes) -> tuple[bytes, int | None]:
    """The frame without its trailer, and the trailer's user timestamp (None if none)."""
    if len(data) < 5 or data[-4:] != MAGIC:
        return data, None
    size = data[-5] ^ 0xFF
    if size < 5 or size > len(data):
        return data, None
    body, end = len(data) - size, len(data) - 5
    stamp = None
    at = body
    while at + 2 <= end:
        tag, length = data[at] ^ 0xFF, data[at + 1] ^ 0xFF
        at += 2
        if at + length > end:
            break
        if tag == USER_TIMESTAMP and length == 8:
            stamp = struct.unpack(">Q", bytes(b ^ 0xFF for b in data[at : at + 8]))[0]
        at += length
    return data[:body], stamp


def trailer(user_timestamp: int) -> bytes:
    """The trailer of a frame with this user timestamp (microseconds)."""
    value = bytes(b ^ 0xFF for b in struct.pack(">Q", user_timestamp))
    fields = bytes([USER_TIMESTAMP ^ 0xFF, 8 ^ 0xFF]) + value
    return fields + bytes([(len(fields) + 5) ^ 0xFF]) + MAGIC


def strip_trailers(receiver: Any) -> None:
    """Take trailers off ``receiver``'s frames before decoding; keep their stamps."""
    track = receiver.track
    if track is None:  # an m-line nothing is received on
        return
    queue = receiver._RTCRtpReceiver__decoder_queue
    put = queue.put
    stamps: OrderedDict[int, int] = OrderedDict()
    _stamps[track] = stamps

    def put_stripped(task: Any, *args: Any, **kwargs: Any) -> None:
        if task is not None:
            frame = task[1]
            frame.data, stamp = parse(frame.data)
            if stamp is not None:
                stamps[frame.timestamp] = stamp
                while len(stamps) > KEPT:
                    stamps.popitem(last=False)
        put(task, *args, **kwargs)

    queue.put = put_stripped


def stamp_of(track: Any, pts: int | None) -> int | None:
    """The user timestamp of the decoded frame with this ``pts`` from ``track``."""
    stamps = _stamps.get(track)
    if stamps is None or pts is None:
        return None
    return stamps.pop(pts, None)


def stamp_output(sender: Any, last_stamp: Any) -> None:
    """Append a trailer to each encoded frame of ``sender`` whose source frame had a stamp;
    ``last_stamp()`` is the stamp of the frame its track handed out last."""
    encode = sender._next_encoded_frame

    async def stamped(codec: Any) -> Any:
        encoded = await encode(codec)
        stamp = last_stamp()
        if encoded is not None and stamp is not None and encoded.payloads:
            encoded.payloads[-1] = encoded.payloads[-1] + trailer(stamp)
        return encoded

    sender._next_encoded_frame = stamped
