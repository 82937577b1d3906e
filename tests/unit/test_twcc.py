"""The emulator's transport-wide congestion feedback (emulator/livekit/twcc.py).

Pure logic against the draft's packet layout, decoded here independently of
the encoder; tests/e2e/test_twcc_bandwidth.py checks the estimate a LiveKit client gets.
"""

from __future__ import annotations

import struct
import time

import pytest

from decart_sync.emulator.livekit import twcc

URI = twcc.URI
SEND_TIME = twcc.SEND_TIME_URI


def rtp(seq: int, *, tw_id: int = 3, send_time: int | None = None, two_byte: bool = False) -> bytes:
    """An RTP packet with a transport-wide sequence number (and abs-send-time)."""
    elements = [(tw_id, struct.pack("!H", seq))]
    if send_time is not None:
        elements.append((2, send_time.to_bytes(3, "big")))
    if two_byte:
        body = b"".join(bytes([i, len(v)]) + v for i, v in elements)
        profile = 0x1000
    else:
        body = b"\x00" + b"".join(bytes([i << 4 | len(v) - 1]) + v for i, v in elements)
        profile = 0xBEDE
    body += bytes(-len(body) % 4)
    header = struct.pack("!BBHLL", 0x90, 96, seq, 1234, 0xCAFE)
    return header + struct.pack("!HH", profile, len(body) // 4) + body + b"payload"


def decode(packet: bytes) -> tuple[int, list[float | None]]:
    """base sequence number, and per packet its arrival in seconds (None: lost)."""
    flags, kind, length = struct.unpack_from("!BBH", packet)
    assert flags >> 6 == 2 and flags & 0x1F == 15 and kind == 205
    assert len(packet) == (length + 1) * 4
    if flags & 0x20:
        packet = packet[: len(packet) - packet[-1]]
    base, count = struct.unpack_from("!HH", packet, 12)
    reference = int.from_bytes(packet[16:19], "big", signed=True) * 0.064
    pos, symbols = 20, []
    while len(symbols) < count:
        (chunk,) = struct.unpack_from("!H", packet, pos)
        pos += 2
        if chunk >> 15 == 0:  # run length
            symbols += [chunk >> 13 & 3] * (chunk & 0x1FFF)
        elif chunk >> 14 & 1:  # seven 2-bit symbols
            symbols += [chunk >> 2 * (6 - i) & 3 for i in range(7)]
        else:  # fourteen 1-bit symbols
            symbols += [chunk >> 13 - i & 1 for i in range(14)]
    clock, times = reference, []
    for symbol in symbols[:count]:
        if symbol == 0:
            times.append(None)
            continue
        if symbol == 1:
            delta = packet[pos]
            pos += 1
        else:
            (delta,) = struct.unpack_from("!h", packet, pos)
            pos += 2
        clock += delta * 0.00025
        times.append(clock)
    assert pos == len(packet), "bytes left after the deltas"
    return base, times


def test_header_extensions_of_both_forms() -> None:
    for two_byte in (False, True):
        found = twcc.header_extensions(rtp(513, send_time=0x123456, two_byte=two_byte))
        assert found == {3: b"\x02\x01", 2: b"\x12\x34\x56"}
    assert twcc.header_extensions(b"\x80" + bytes(20)) == {}  # no extension bit


def test_feedback_reports_arrivals_and_losses() -> None:
    feedback = twcc.Feedback(3)
    start = time.monotonic()
    arrivals = {65533: 0.0, 65534: 0.004, 0: 0.0105, 1: 0.030, 4: 0.200, 3: 0.190}
    for seq, at in arrivals.items():  # wraps at 65535; 2 lost; 3 and 4 out of order
        feedback.record(rtp(seq), start + at)
    packet = feedback.build()
    assert packet is not None
    base, times = decode(packet)
    assert base == 65533 and len(times) == 8  # 65533 .. 4, through the wrap
    assert times[5] is None  # 2
    got = [t for t in times if t is not None]
    want = [arrivals[s] for s in (65533, 65534, 0, 1, 3, 4)]
    relative = [t - got[0] for t in got]
    assert relative == pytest.approx(want, abs=0.0003)
    assert feedback.build() is None  # nothing new
    # Reported lost, then late: the next report starts again from it, so that the
    # sender counts it received (a network that reorders does not lose packets).
    feedback.record(rtp(2), start + 0.21)
    base, times = decode(feedback.build() or b"")
    assert base == 2 and len(times) == 3 and None not in times
    assert times[0] - times[1] == pytest.approx(0.21 - 0.19, abs=0.0003)
    feedback.record(rtp(6), start + 0.25)
    base, times = decode(feedback.build() or b"")
    assert base == 5 and times[0] is None and times[1] is not None  # 5 never came


def test_reported_arrival_is_the_send_time_when_the_packet_has_one() -> None:
    feedback = twcc.Feedback(3, send_time_id=2)
    start = time.monotonic()
    # Sent 10 ms apart (abs-send-time: 2^-18 s units), read 30 ms late in one burst.
    for seq, sent in ((10, 0), (11, 2621), (12, 5243)):
        feedback.record(rtp(seq, send_time=sent), start + 0.030)
    _, times = decode(feedback.build() or b"")
    assert [t - times[0] for t in times] == pytest.approx([0, 0.010, 0.020], abs=0.0003)
    # One without a send time (audio, here) keeps its arrival, on the same clock: read
    # 5 ms after the next one, sent 10 ms after it and read with no delay.
    feedback.record(rtp(13), start + 0.035)
    feedback.record(rtp(14, send_time=7864), start + 0.040)
    _, later = decode(feedback.build() or b"")
    assert later[1] - later[0] == pytest.approx(0.005, abs=0.0003)


def test_the_answer_asks_for_feedback_where_the_offer_offered_it() -> None:
    offer = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:0",
            f"a=extmap:3 {URI}",
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
            "a=mid:1",
            f"a=extmap:3 {URI}",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "a=mid:2",
        ]
    )
    answer = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:0",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=mid:1",
            "a=rtcp-fb:96 goog-remb",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "a=mid:2",
        ]
    )
    sections = twcc.answer_with_feedback(offer, answer).split("m=")
    assert f"a=extmap:3 {URI}" in sections[1] and "a=rtcp-fb:111 transport-cc" in sections[1]
    assert f"a=extmap:3 {URI}" in sections[2] and "a=rtcp-fb:96 transport-cc" in sections[2]
    assert "goog-remb" not in sections[2]
    assert "extmap" not in sections[3] and "transport-cc" not in sections[3]
    assert twcc.extension_id(offer) == 3 and twcc.extension_id(offer, SEND_TIME) is None


def test_our_offers_announce_a_start_bitrate_for_each_video_codec() -> None:
    offer = "\r\n".join([
        "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10", "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99 100", "a=mid:1",
        "a=rtpmap:97 VP8/90000", "a=rtpmap:98 rtx/90000", "a=fmtp:98 apt=97",
        "a=rtpmap:99 H264/90000", "a=fmtp:99 packetization-mode=1;profile-level-id=42e01f",
        "a=rtpmap:100 rtx/90000", "a=fmtp:100 apt=99", "",
    ])  # fmt: skip
    edited = twcc.with_start_bitrate(offer, 7000).split("\r\n")
    start = "x-google-start-bitrate=7000"
    assert edited[edited.index("a=rtpmap:97 VP8/90000") + 1] == f"a=fmtp:97 {start}"
    assert f"a=fmtp:99 packetization-mode=1;profile-level-id=42e01f;{start}" in edited
    assert "a=fmtp:98 apt=97" in edited and "a=fmtp:100 apt=99" in edited  # retransmissions
    assert "a=fmtp:111 minptime=10" in edited  # audio
    assert len(edited) == len(offer.split("\r\n")) + 1


def test_where_we_only_send_the_bundle_takes_the_extension_and_remb_stays() -> None:
    # /rtc/v1: the client's first offer holds what it receives; unless the answer takes the
    # extension there, libwebrtc leaves it out of the camera's m-section offered later.
    offer = "\r\n".join(
        ["v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:0", f"a=extmap:3 {URI}", "a=recvonly"]
    )
    answer = "\r\n".join(
        ["v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=sendonly", "a=mid:0", "a=rtcp-fb:96 goog-remb"]
    )
    sent = twcc.answer_with_feedback(offer, answer)
    assert f"a=extmap:3 {URI}" in sent and "a=rtcp-fb:96 goog-remb" in sent
    assert "transport-cc" not in sent.replace(URI, "")
