"""Transport-wide congestion feedback on what a client publishes, as a LiveKit server sends it.

libwebrtc estimates how fast it may send from RTCP transport feedback
(draft-holmer-rmcat-transport-wide-cc-extensions-01): the arrival time of
every packet, by a sequence number the whole transport shares. A LiveKit
server asks for it (``transport-cc`` in its answer) and sends it; aiortc
knows only REMB, with which the client's estimate grows from 300 kbit/s by
8% a second: a 1280x720 camera reached the emulator at 640x360 for its first
8 s, and at full size only after 20 s. With feedback the client probes, and
its estimate passes 2 Mbit/s within a second or two, as with the service.

aiortc has no hook for either half, so `install()` wraps two of its
private methods on the publisher's DTLS transport: ``_handle_rtp_data``
(each packet as it arrives, decrypted) and ``_send_rtp`` (feedback out).

The subscriber PC, receive-only for the client, is another matter: libwebrtc
estimates a send rate only from feedback on what it sends, and routes REMB and
transport feedback to that estimator only from send streams, so a connection
that sends no RTP reports its start bitrate (300 kbit/s) for good, whatever a
server sends back. The JS SDK 0.1.20 reads the last candidate pair its stats
list, the subscriber's (observability/livekit-stats-provider.ts and
webrtc-stats.ts), and judged the loopback "critical" for bandwidth. Our offers
announce a start bitrate instead, the loopback's (`with_start_bitrate()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import time
from collections.abc import Callable
from typing import Any

from ..netem import DELAY_ATTRIBUTE
from . import sdp

URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
INTERVAL = 0.05  # seconds between feedback packets (libwebrtc's own receivers: 50-250 ms)
TICK = 0.00025  # receive deltas are in 250 us units
REFERENCE = 0.064  # the reference time is in 64 ms units
MOST = 2000  # packets one feedback covers at most; older ones count as lost
# What a loopback carries, for a camera's few Mbit/s: unlimited (kbit/s).
LOOPBACK_KBPS = 10_000
NOT_CODECS = ("rtx", "red", "ulpfec", "flexfec-03")  # helpers: no bitrate of their own


def answer_with_feedback(offer: str, answer: str) -> str:
    """``answer`` taking the transport-wide sequence numbers wherever ``offer`` offered the
    extension (its ``extmap`` line: the bundle negotiates it, or libwebrtc leaves it out of
    every later m-section, a camera published later on ``/rtc/v1`` included), and asking
    for transport feedback (``transport-cc`` for each payload type, instead of REMB) where
    we receive. Where we only send (``/rtc/v1``) the client keeps REMB, the only estimate
    aiortc's sender reads; aiortc's packets carry no sequence numbers anyway."""
    ids = {
        key: int(re.split(r"[ /]", line)[0])
        for key, lines in sdp.attributes(offer, "extmap").items()
        for line in lines
        if line.split()[-1] == URI
    }
    parts = sdp.sections(answer)
    for i, section in enumerate(parts[1:], 1):
        key = sdp.mid(section)
        if key not in ids or not sdp.receives_rtp(section):
            continue
        if sdp.direction(section) in ("recvonly", "sendrecv"):
            section = [x for x in section if not x.endswith(" goog-remb")]  # see install
            section.extend(f"a=rtcp-fb:{pt} transport-cc" for pt in section[0].split()[3:])
        section.append(f"a=extmap:{ids[key]} {URI}")
        parts[i] = section
    return sdp.join(parts)


def with_start_bitrate(offer: str, kbps: int = LOOPBACK_KBPS) -> str:
    """``offer`` announcing ``kbps`` as the start bitrate of its video codecs
    (``x-google-start-bitrate``, which libwebrtc reads from the remote description's
    codec parameters), for a connection whose estimate can never move from it."""
    parts = sdp.sections(offer)
    for i, section in enumerate(parts[1:], 1):
        if not section[0].startswith("m=video"):
            continue
        rtpmaps = [line.split(None, 1) for line in section if line.startswith("a=rtpmap:")]
        codecs = [pt[9:] for pt, name in rtpmaps if name.split("/")[0].lower() not in NOT_CODECS]
        has_fmtp = {line[7:].split()[0] for line in section if line.startswith("a=fmtp:")}
        edited: list[str] = []
        for line in section:
            kind, _, rest = line.partition(":")
            pt = rest.split(" ", 1)[0]
            if kind == "a=fmtp" and pt in codecs:
                line += f";x-google-start-bitrate={kbps}"
            edited.append(line)
            if kind == "a=rtpmap" and pt in codecs and pt not in has_fmtp:
                edited.append(f"a=fmtp:{pt} x-google-start-bitrate={kbps}")
        parts[i] = edited
    return sdp.join(parts)


def extension_id(offer: str, uri: str = URI) -> int | None:
    """The id the offer gives an RTP header extension (one id across a bundle)."""
    match = re.search(rf"^a=extmap:(\d+)(?:/\w+)? {re.escape(uri)}\s*$", offer, re.M)
    return int(match.group(1)) if match else None


def header_extensions(packet: bytes) -> dict[int, bytes]:
    """An RTP packet's header extensions by id (one- and two-byte forms, RFC 8285)."""
    found: dict[int, bytes] = {}
    if len(packet) < 12 or not packet[0] & 0x10:
        return found
    start = 12 + 4 * (packet[0] & 0x0F)
    if len(packet) < start + 4:
        return found
    profile, words = struct.unpack_from("!HH", packet, start)
    pos, end = start + 4, min(len(packet), start + 4 + 4 * words)
    one_byte = profile == 0xBEDE
    if not one_byte and profile & 0xFFF0 != 0x1000:
        return found
    while pos < end:
        if packet[pos] == 0:  # padding
            pos += 1
            continue
        if one_byte:
            xid, size = packet[pos] >> 4, (packet[pos] & 0x0F) + 1
            if xid == 15:
                break
            pos += 1
        elif pos + 1 < end:
            xid, size = packet[pos], packet[pos + 1]
            pos += 2
        else:
            break
        found[xid] = packet[pos : pos + size]
        pos += size
    return found


class Feedback:
    """Arrival times by transport-wide sequence number, and the feedback packets
    that report them (each covers what arrived since the last one)."""

    def __init__(self, ext_id: int, send_time_id: int | None = None, ssrc: int = 1) -> None:
        self.ext_id = ext_id
        self.send_time_id = send_time_id
        self._sent: tuple[int, float] | None = None  # the last abs-send-time, unwrapped
        self._offset = float("inf")  # our clock minus the sender's, the least seen
        self._ssrc = ssrc
        self._media_ssrc = 0
        self._arrivals: dict[int, tuple[float | None, float]] = {}  # (send time, arrival)
        self._known: dict[int, tuple[float | None, float]] = {}  # the last MOST, reported too
        self._last: int | None = None  # the newest 16-bit number, to unwrap the next
        self._unwrapped = 0
        self._next: int | None = None  # the first number the next feedback reports
        self._count = 0  # feedback packets sent, modulo 256 on the wire
        self._epoch = time.monotonic()

    def record(self, packet: bytes, now: float, delay: float = 0.0) -> None:
        """``delay``: what the emulated network (netem) added, reported as if sent later."""
        found = header_extensions(packet)
        raw = found.get(self.ext_id)
        if raw is None or len(raw) < 2:
            return
        seq = int.from_bytes(raw[:2], "big")
        at = now - self._epoch
        send = None
        stamp = found.get(self.send_time_id) if self.send_time_id is not None else None
        if stamp is not None and len(stamp) == 3:
            send = self._send_time(int.from_bytes(stamp, "big")) + delay
            self._offset = min(self._offset, at - send)
        if self._last is None:
            self._unwrapped = seq
        else:
            step = (seq - self._last) & 0xFFFF
            self._unwrapped += step if step < 0x8000 else step - 0x10000
        self._last = seq
        self._media_ssrc = struct.unpack_from("!L", packet, 8)[0]
        self._arrivals[self._unwrapped] = self._known[self._unwrapped] = (send, at)

    def _send_time(self, stamp: int) -> float:
        """abs-send-time (6.18 fixed point seconds, wrapping every 64 s), unwrapped."""
        seconds = stamp / (1 << 18)
        if self._sent is not None:
            last, base = self._sent
            step = (stamp - last) & 0xFFFFFF
            seconds = base + (step if step < 0x800000 else step - 0x1000000) / (1 << 18)
        self._sent = stamp, seconds
        return seconds

    def build(self) -> bytes | None:
        """The next feedback packet (RTCP RTPFB, FMT 15), or None with nothing new.

        Each covers what arrived since the last one; a packet that arrives after a
        report counted it lost (a network that reorders) starts the next report again
        from it, with every arrival known since, as libwebrtc's receiver does: the
        sender takes the packet for received, not for lost, and no reordering passes
        for loss."""
        arrivals, self._arrivals = self._arrivals, {}
        if not arrivals:
            return None
        base, last = min(arrivals), max(arrivals)
        if self._next is not None:
            base, last = min(base, self._next), max(last, self._next - 1)
        base = max(base, last - MOST + 1)
        # The arrival reported is the send time, on our clock by the least offset seen:
        # the loopback has no queue, and a read the emulator's busy loop made late must
        # not look like one. A packet without a send time keeps its real arrival.
        received = sorted(
            (seq, at if send is None else send + self._offset)
            for seq, (send, at) in self._known.items()
            if base <= seq <= last
        )
        self._next = last + 1
        for seq in [seq for seq in self._known if seq <= last - MOST]:
            del self._known[seq]
        if not received:
            return None
        reference = int(received[0][1] / REFERENCE)
        clock = reference * REFERENCE  # the receiver rebuilds times from the deltas
        times = dict(received)
        statuses: list[int] = []
        deltas = bytearray()
        for seq in range(base, last + 1):
            at = times.get(seq)
            if at is None:
                statuses.append(0)
                continue
            ticks = round((at - clock) / TICK)
            if 0 <= ticks <= 0xFF:
                statuses.append(1)
                deltas.append(ticks)
            else:
                ticks = max(-0x8000, min(0x7FFF, ticks))
                statuses.append(2)
                deltas += struct.pack("!h", ticks)
            clock += ticks * TICK
        chunks = bytearray()
        for i in range(0, len(statuses), 7):  # status vector chunks of seven 2-bit symbols
            group = statuses[i : i + 7] + [0] * (7 - len(statuses[i : i + 7]))
            chunks += struct.pack("!H", 0xC000 | sum(s << 2 * (6 - j) for j, s in enumerate(group)))
        body = struct.pack("!LLHH", self._ssrc, self._media_ssrc, base & 0xFFFF, len(statuses))
        body += (reference & 0xFFFFFF).to_bytes(3, "big") + bytes([self._count & 0xFF])
        body += chunks + deltas
        self._count += 1
        pad = -len(body) % 4
        flags = 0x80 | 15
        if pad:
            body += bytes(pad - 1) + bytes([pad])
            flags |= 0x20
        return struct.pack("!BBH", flags, 205, (len(body) + 4) // 4 - 1) + bytes(body)


def install(
    transport: Any, offer: str, keep: Callable[[bytes], bool] | None = None
) -> asyncio.Task[None] | None:
    """Records arrivals on ``transport`` (aiortc's RTCDtlsTransport) and sends feedback
    every `INTERVAL` until the returned task is cancelled; None when ``offer``
    has no transport-wide sequence numbers. ``keep``: which packets, once counted,
    go on to aiortc."""
    ext_id = extension_id(offer)
    if ext_id is None:
        return None
    feedback = Feedback(ext_id, extension_id(offer, SEND_TIME_URI))
    receive = transport._handle_rtp_data

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        feedback.record(data, time.monotonic(), getattr(transport, DELAY_ATTRIBUTE, 0.0))
        if keep is None or keep(data):
            await receive(data, arrival_time_ms)

    transport._handle_rtp_data = handle_rtp_data
    transmit = transport._send_rtp

    async def send_rtp(data: bytes) -> None:
        # aiortc's REMB (RTCP PSFB, FMT 15) goes no further: its estimate, from the same
        # late reads, held the client near 100 kbit/s; a LiveKit server sends none.
        if len(data) > 1 and data[1] == 206 and data[0] & 0x1F == 15:
            return
        await transmit(data)

    transport._send_rtp = send_rtp

    async def send() -> None:
        try:
            while True:
                await asyncio.sleep(INTERVAL)
                packet = feedback.build()
                if packet is not None:
                    with contextlib.suppress(ConnectionError):
                        # Through whatever wraps the transport now (netem's network too).
                        await transport._send_rtp(packet)
        finally:
            transport._handle_rtp_data, transport._send_rtp = receive, transmit

    return asyncio.ensure_future(send())
