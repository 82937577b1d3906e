"""Pure logic: models, tokens, prompts, SDP shaping, images, errors."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import threading
import time
import warnings
from collections.abc import Callable

import av
import numpy as np
import pytest

import decart_sync
from decart_sync import errors, models
from decart_sync.options import check_prompt, user_agent
from decart_sync.realtime import images
from decart_sync.realtime.aiortc_tracks import InputTrack
from decart_sync.realtime.clock import Pacer
from decart_sync.realtime.messages import parse
from decart_sync.realtime.signaling import redact
from decart_sync.realtime.subscribe_tokens import SubscribeToken, decode_token
from decart_sync.realtime.tracks import LatestFrame, feed
from decart_sync.realtime.transports import webrtc


def test_models_and_factories() -> None:
    assert models.realtime.mirage().fps == 25
    assert (models.realtime.lucy_2_rt().width, models.realtime.lucy_2_rt().height) == (1280, 720)
    assert models.realtime.mirageV2() is models.realtime.mirage_v2()
    assert models.realtime("lucy-restyle").name == "lucy-restyle"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        models._warned.discard("mirage_v2")
        models.realtime("mirage_v2")
        models.realtime("mirage_v2")
    assert [w.category for w in caught] == [DeprecationWarning]
    assert models.realtime.live_avatar().is_avatar
    with pytest.raises(errors.InvalidOptionsError):
        models.ModelDefinition("x", url_path="no-slash")
    with pytest.raises(errors.InvalidOptionsError):
        models.ModelDefinition("x", width=321)


def test_a_model_on_a_command_line() -> None:
    custom = models.ModelDefinition("cam", fps=12.5, width=320, height=192)
    livekit = models.ModelDefinition("cam", fps=30, width=1280, height=720, transport="livekit")
    for model in (custom, livekit, models.realtime("lucy-2.1")):
        assert models.parse(models.spec(model), names=False) == models.ModelDefinition(
            model.name, fps=model.fps, width=model.width, height=model.height,
            transport=model.transport,
        )  # fmt: skip
    assert models.spec(livekit) == "cam:30:1280x720:livekit"
    assert models.parse(" cam:12.5:320X192 ") == custom
    assert models.parse("lucy-2.1") is models.realtime("lucy-2.1")
    with pytest.raises(errors.ModelNotFoundError):
        models.parse("no-such-model")
    for bad in ("lucy-2.1", "cam:25", "cam:fast:320x192", "cam:25:320", "cam:25:2x2:livekit:x"):
        with pytest.raises(errors.InvalidOptionsError, match="is not NAME:FPS:WIDTHxHEIGHT"):
            models.parse(bad, names=False)
    # What the definition itself refuses, said with the text it came from.
    for bad, why in (("cam:25:321x192", "even integer"), ("cam:25:2x2:udp", "transport")):
        with pytest.raises(errors.InvalidOptionsError, match=f"'{bad}'.*{why}"):
            models.parse(bad)


def test_token_round_trip_and_both_alphabets() -> None:
    token = SubscribeToken("sid-1", "127.0.0.1", 8765)
    assert decode_token(token.encode()) == token
    raw = json.dumps({"sid": "a?>", "ip": "1.2.3.4", "port": 1}).encode()
    assert decode_token(base64.b64encode(raw).decode()).sid == "a?>"
    assert decode_token(base64.urlsafe_b64encode(raw).decode().rstrip("=")).sid == "a?>"
    for bad in ("", "not base64!", base64.b64encode(b"[1]").decode(), 42):
        with pytest.raises(errors.InvalidInputError):
            decode_token(bad)


def test_prompt_rules() -> None:
    check_prompt("a" * 1000)
    for bad in ("", " \n", "a" * 1001, None, 3):
        with pytest.raises(errors.InvalidInputError):
            check_prompt(bad)


def test_bitrate_hints_added_to_vp8() -> None:
    sdp = (
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97 98\r\na=rtpmap:97 VP8/90000\r\n"
        "a=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=97\r\n"
    )
    out = webrtc.add_bitrate_hints(sdp)
    assert "a=fmtp:97 x-google-min-bitrate=300;x-google-start-bitrate=600" in out
    assert "a=fmtp:98 apt=97\r\n" in out
    again = webrtc.add_bitrate_hints("v=0\r\na=rtpmap:96 VP8/90000\r\na=fmtp:96 max-fr=30\r\n")
    assert "a=fmtp:96 max-fr=30;x-google-min-bitrate=300;x-google-start-bitrate=600" in again


def test_candidate_parsing() -> None:
    text = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
    candidate = webrtc.candidate_of({"candidate": text, "sdpMid": "0", "sdpMLineIndex": 0})
    assert candidate is not None and candidate.ip == "127.0.0.1" and candidate.sdpMid == "0"
    assert webrtc.candidate_of(None) is None
    assert webrtc.candidate_of({"candidate": ""}) is None
    for junk in ({"candidate": "garbage"}, {"candidate": 5}, "text", []):
        with pytest.raises(ValueError):
            webrtc.candidate_of(junk)


def test_message_parsing_rejects_junk() -> None:
    assert parse('{"type": "ready"}') == {"type": "ready"}
    for junk in ("{not json", "[1, 2]", '{"no": "type"}', '{"type": 5}', b"\xff"):
        with pytest.raises(ValueError):
            parse(junk)


def test_api_key_is_redacted() -> None:
    url = "wss://h/v1/stream?api_key=SECRET&model=mirage"
    assert "SECRET" not in redact(url)
    client = decart_sync.DecartClient(api_key="SECRET", realtime_base_url="ws://127.0.0.1:1")
    assert "SECRET" not in repr(client)
    assert "lang/py" in user_agent() and user_agent("ros").endswith(" ros")


def test_images_every_kind(tmp_path) -> None:
    png = images.encode_png(np.zeros((4, 6, 3), np.uint8))
    path = tmp_path / "a.png"
    path.write_bytes(png)
    b64 = base64.b64encode(png).decode()
    for kind in (png, str(path), path, f"data:image/png;base64,{b64}", b64):
        assert images.to_base64(kind) == b64
    for bad in (b"junk", "nope", 12, "file:///etc/passwd", np.zeros((3, 3), np.float32)):
        with pytest.raises(errors.InvalidInputError):
            images.to_base64(bad)


def test_error_codes_and_permanence() -> None:
    assert errors.server_error("Invalid API key").code == "INVALID_API_KEY"
    assert errors.server_error("Insufficient credits").code == "WEBRTC_SERVER_ERROR"
    assert errors.is_permanent("Permission denied for this model")
    assert not errors.is_permanent("server overloaded")
    error = errors.WebSocketError("boom", cause=OSError("x"))
    assert str(error) == "[WEBRTC_WEBSOCKET_ERROR] boom" and isinstance(error.cause, OSError)


def test_output_conversion_allocates_only_the_array() -> None:
    import gc
    import tracemalloc

    import av

    from decart_sync.realtime.frame_hub import FrameHub, FrameIterator

    model = models.ModelDefinition("t", fps=25, width=640, height=352)
    hub = FrameHub(model, "rgb24")
    rgb = np.random.default_rng(0).integers(0, 255, (352, 640, 3), np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    frames = FrameIterator(hub, timeout=1)
    hub.publish(frame)
    next(frames)  # warm caches (the reformatter, numpy's type objects)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(20):
            hub.publish(frame)
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            array = next(frames)
            _, peak = tracemalloc.get_traced_memory()
            # The array is a view on the one buffer FFmpeg converts into (outside
            # tracemalloc's sight); any numpy-side copy would show up here.
            assert peak - before < 16 * 1024 < rgb.nbytes
            assert isinstance(array.base, av.video.plane.VideoPlane)
            assert array.flags.writeable and array.shape == rgb.shape
            del array
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 64 * 1024  # nothing kept per frame


def test_images_over_http(tmp_path) -> None:
    import functools
    import http.server
    import threading

    png = images.encode_png(np.full((8, 8, 3), 7, np.uint8))
    (tmp_path / "a.png").write_bytes(png)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            assert images.to_base64(f"{base}/a.png") == base64.b64encode(png).decode()
            with pytest.raises(errors.InvalidInputError):
                images.to_base64(f"{base}/missing.png")  # 404
        finally:
            server.shutdown()
            thread.join(5)


def test_audio_decoding(tmp_path) -> None:
    import av

    from decart_sync.realtime.audio import RATE, decode_audio

    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16_000, layout="mono")
        t = np.arange(16_000) / 16_000
        pcm = (np.sin(2 * np.pi * 440 * t) * 16_000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 16_000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    for source in (str(path), path.read_bytes()):
        samples = decode_audio(source)
        assert abs(len(samples) - RATE) < RATE // 50  # one second, resampled to 48 kHz
        assert samples.dtype == np.int16 and np.abs(samples).max() > 10_000
    floats = decode_audio(np.zeros(8000, np.float32), sample_rate=8000)
    assert abs(len(floats) - RATE) < RATE // 50
    for bad, rate in ((b"junk", None), (np.zeros(10), None), (np.full(10, np.nan), 8000)):
        with pytest.raises(errors.InvalidInputError):
            decode_audio(bad, rate)


def test_pacer_sends_new_frames_at_once_caps_the_rate_and_repeats_when_idle() -> None:
    async def scenario() -> None:
        pacer = Pacer(fps=2.0)  # a period of 0.5 s, so the bounds below are wide
        start = time.monotonic()
        await pacer.wait()  # the first frame goes at once
        asyncio.get_running_loop().call_later(0.05, pacer.arrived)
        await pacer.wait()  # a new frame goes when it arrives, not a period later
        assert time.monotonic() - start < 0.45

        # Nothing new: the last frame goes again, but not before 1.5 periods.
        idle_from = time.monotonic()
        await pacer.wait()
        assert time.monotonic() - idle_from >= 0.74

        # A producer far faster than fps: the bucket holds it to about fps.
        begin, sent = time.monotonic(), 0
        while time.monotonic() - begin < 1.0:
            pacer.arrived()
            await pacer.wait()
            sent += 1
        assert sent <= 2.0 * 1.25 + pacer.burst

    asyncio.run(scenario())


def test_a_sink_gets_new_frames_in_the_senders_thread_held_to_the_rate_with_repeats() -> None:
    model = models.ModelDefinition("sink-test", fps=2.0, width=64, height=48)  # 0.5 s periods
    holder = LatestFrame(model, "rgb24", "rgb24")
    got: list[tuple[int, int, float]] = []  # (thread, red of the first pixel, when)

    def sink(frame: av.VideoFrame) -> None:
        got.append((threading.get_ident(), int(frame.to_ndarray()[0, 0, 0]), time.monotonic()))

    def picture(red: int) -> np.ndarray:
        return np.full((48, 64, 3), red, np.uint8)

    async def until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        task = asyncio.ensure_future(feed(holder, sink))
        await until(lambda: len(got) == 1, "the black frame at once")
        assert got[0][:2] == (loop_thread, 0)

        def send(*reds: int) -> int:
            for red in reds:
                array = picture(red)
                holder.put(array)
                array[:] = 99  # the caller reuses its array: what was kept must not change
            return threading.get_ident()

        sender = await asyncio.to_thread(send, 10)  # a token is there: handed over at once
        assert got[1][:2] == (sender, 10)
        await asyncio.to_thread(send, 20, 30)  # no token: 20 is superseded, 30 waits
        await until(lambda: len(got) == 3, "the held-back frame")
        assert got[2][:2] == (loop_thread, 30) and holder.skipped == 1
        await until(lambda: len(got) == 4, "a repeat")
        assert got[3][1] == 30 and got[3][2] - got[2][2] >= 0.74  # 1.5 periods
        assert holder.sent == 4 and holder.count == 3

        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        before = len(got)
        await asyncio.to_thread(send, 40)
        assert len(got) == before  # detached: never called again

    asyncio.run(scenario())


def test_put_keeps_a_copy_unless_told_the_array_is_never_written_again() -> None:
    model = models.ModelDefinition("copy-test", fps=30.0, width=64, height=48)
    holder = LatestFrame(model, "rgb24", "rgb24")
    array = np.full((48, 64, 3), 7, np.uint8)
    holder.put(array)
    array[:] = 1
    assert int(holder.get().to_ndarray()[0, 0, 0]) == 7
    holder.put(array, copy=False)
    assert np.shares_memory(holder.get().to_ndarray(), array)


@pytest.mark.parametrize("pixels", ["rgb24", "yuv420p"])  # LiveKit's (a copy), aiortc's
def test_every_kept_and_sent_frame_keeps_its_own_capture_time(pixels: str) -> None:
    model = models.ModelDefinition("stamp-test", fps=2.0, width=64, height=48)  # 0.5 s periods
    holder = LatestFrame(model, "rgb24", pixels)
    sent: list[object] = []
    holder.attach(lambda frame: sent.append(frame.opaque))
    # A burst inside one period: what the rate allows goes at once, the rest is held back.
    stamps = [round(holder.put(np.full((48, 64, 3), red, np.uint8)) * 1e6) for red in range(5)]
    gc.collect()  # the views and superseded frames are gone: their stamps must not take ours
    assert sent and all(stamp in stamps for stamp in sent), (sent, stamps)
    assert holder.get().opaque == stamps[-1]  # what the loop sends, and repeats
    deadline = time.monotonic() + 5
    while sent[-1] != stamps[-1]:  # the held-back newest goes once its period has come
        assert time.monotonic() < deadline, f"the newest never went with its stamp: {sent}"
        time.sleep(holder.send_due())
    repeats = len(sent) + 1
    while len(sent) < repeats:  # and the repeat after it
        assert time.monotonic() < deadline, "no repeat"
        time.sleep(holder.send_due())
    assert sent[-1] == stamps[-1]


def test_a_late_stop_of_an_old_input_track_keeps_the_new_tracks_wake_up() -> None:
    async def scenario() -> None:
        holder = LatestFrame(models.ModelDefinition("t", fps=25, width=64, height=64), "rgb24")
        old = InputTrack(holder, 25)
        new = InputTrack(holder, 25)  # a reconnect's track, made before the old one stopped
        hook = holder.on_put
        old.stop()
        assert holder.on_put is hook is not None
        new.stop()
        assert holder.on_put is None

    asyncio.run(scenario())


def test_benchmark_pairs_each_repetition_with_its_own() -> None:
    from benchmarks.report import paired_ratios, sign_test

    runs = {
        "decart_sync": [{"rep": 0, "cpu_per_s": 0.9}, {"rep": 1, "cpu_per_s": 1.2}, {"rep": 2}],
        "official_livekit": [{"rep": 0, "cpu_per_s": 1.0}, {"rep": 2, "cpu_per_s": 1.0}],
    }
    # Rep 1 has no official run and rep 2 no figure of ours: neither is paired.
    assert paired_ratios(runs) == [pytest.approx(0.9)]
    assert paired_ratios(runs, "cpu_per_s", "official_livekit", "decart_sync") == [
        pytest.approx(1 / 0.9)
    ]
    assert sign_test(3, 3) == 1 / 8
    assert sign_test(0, 4) == 1.0
    assert sign_test(9, 10) == pytest.approx(11 / 1024)


def test_the_livekit_floor_publishes_as_decart_sync_does() -> None:
    # The floor's worker imports nothing of ours (its memory is the floor's): its copy
    # of our publish settings is held here.
    from benchmarks import worker_bare_livekit as floor
    from decart_sync.realtime.transports import livekit

    assert livekit.PUBLISH_FPS == floor.PUBLISH_FPS
    assert livekit.MAX_BITRATE["h264"] == floor.MAX_BITRATE
