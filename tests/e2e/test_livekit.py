"""decart_sync over LiveKit (today's service) against the emulator, end to end.

Real parts: the ``livekit`` package's native client (libwebrtc, H264) publishes
and receives through the emulator's LiveKit test double on loopback, with
the same control WebSocket as the plain WebRTC path. Every test runs on both
LiveKit signaling paths (``/rtc/v1``, one peer connection, and the classic
``/rtc`` a server without v1 leaves), and checks the one its client took.
"""

from __future__ import annotations

import ast
import base64
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from helpers import (
    KEY,
    SIGNALING,
    clients_of,
    close_to,
    grayscale,
    invert,
    pattern,
    published_stats,
    repeat,
    took_its_path,
    wait_for_frame,
    wait_until,
)
from livekit.protocol import models as lkm

import decart_sync
from decart_sync import DecartSDKError, ModelDefinition, models
from decart_sync.emulator import Emulator, Faults
from decart_sync.emulator.cli import admin_url

pytestmark = pytest.mark.timeout(120)

LK_SMALL = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
FRAME = pattern(LK_SMALL)
# Large enough that LiveKit's default publish would be simulcast (two or more layers).
LK_VGA = ModelDefinition("test-vga-lk", fps=15, width=640, height=360, transport="livekit")
LK_HD = ModelDefinition("test-hd-lk", fps=30, width=1280, height=720, transport="livekit")


@pytest.fixture(scope="module", params=list(SIGNALING.values()), ids=list(SIGNALING))
def emu(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    models = {m.name: m for m in (LK_SMALL, LK_VGA, LK_HD)}
    with Emulator(models=models, livekit_v1=request.param) as emulator:
        yield emulator


@pytest.fixture
def connect(emu: Emulator) -> Iterator:
    with took_its_path(emu), clients_of(emu.url, model=LK_SMALL) as connect:
        yield connect
    emu.faults = Faults()


def test_restyles_acks_ticks_and_closes_cleanly(connect, emu: Emulator) -> None:
    ticks: queue.Queue[int] = queue.Queue()
    before = {t.name for t in threading.enumerate()}
    client = connect(repeat(FRAME), initial_state={"prompt": "invert"})
    client.on("generation_tick", ticks.put)
    served = emu.wait_for_session(session_id=client.session_id)
    assert served.mode == "livekit"
    assert served.messages[0] == {
        "type": "livekit_join",
        "passthrough": False,
        "client_capabilities": {"frame_timing": True},
    }
    assert served.messages[1]["type"] == "prompt"
    room = json.loads(base64.urlsafe_b64decode(client.subscribe_token or ""))
    assert room == {"room_name": served.room.name}
    [joined] = served.room.participations
    assert joined.path == ("/rtc/v1" if emu.livekit_v1 else "/rtc")
    # The same, as an emulator in another process tells it.
    with requests.Session() as http:
        http.trust_env = False  # never a proxy: loopback only
        listed = http.get(admin_url(emu.url, "sessions"), timeout=5).json()
    [described] = [s["livekit"] for s in listed if s["session_id"] == served.session_id]
    assert [(j["path"], j["peer_connections"]) for j in described] == [
        (joined.path, joined.peer_connections)
    ]

    frames = client.frames(timeout=10)
    wait_for_frame(frames, close_to(invert(FRAME)))
    client.set_prompt("grayscale")
    wait_for_frame(frames, close_to(grayscale(FRAME)))
    reference = np.full_like(FRAME, 200)
    client.set_image(reference, prompt="invert")
    wait_for_frame(frames, close_to(((invert(FRAME).astype(int) + 200) // 2).astype(np.uint8)))
    assert served.prompt == "invert" and served.image is not None
    assert ticks.get(timeout=5) >= 1
    assert client.state == "generating"

    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 2.0
    assert served.wait(lambda: served.closed, 10), "the emulator session outlived the client"
    # The client's threads are all joined; LiveKit's native ones are its own, the
    # emulator's worker pool belongs to the emulator in this process.
    ours = {t.name for t in threading.enumerate()} - before
    ours = {name for name in ours if name.startswith("decart-sync") and "emulator" not in name}
    assert not ours


def test_the_camera_is_published_as_one_layer(connect, emu: Emulator) -> None:
    # LiveKit's default, simulcast, would also encode smaller copies of every frame,
    # which the model (the track's only subscriber) never asks for.
    client = connect(repeat(pattern(LK_VGA)), model=LK_VGA)
    served = emu.wait_for_session(session_id=client.session_id)
    next(client.frames(timeout=10))
    assert served.room is not None and served.room.client is not None
    published = [t for t in served.room.client.info.tracks if t.type == lkm.TrackType.VIDEO]
    assert [(t.simulcast, len(t.layers)) for t in published] == [(False, 1)]


def test_the_camera_keeps_its_size_from_the_start(connect, emu: Emulator) -> None:
    # libwebrtc's default started a 1280x720 camera at 320x180 and took some 16 s
    # to step back up to full size: the model would restyle an upscaled thumbnail.
    client = connect(repeat(pattern(LK_HD)), model=LK_HD)
    served = emu.wait_for_session(session_id=client.session_id)
    frames = client.frames(timeout=10)
    sizes = set()
    for _ in range(30):  # the first second
        next(frames)
        if served.last_frame_in is not None:
            sizes.add((served.last_frame_in.width, served.last_frame_in.height))
    assert sizes == {(1280, 720)}


def test_simulcast_is_accepted_and_its_full_layer_reaches_the_model(
    connect, emu: Emulator, monkeypatch
) -> None:
    # What LiveKit clients do by default, the official SDK among them. A LiveKit server
    # takes every layer; the emulator must too, or the client encodes something else
    # than it would for the service.
    import decart_sync.realtime.transports.livekit as lk

    options = lk.rtc.TrackPublishOptions
    monkeypatch.setattr(
        lk.rtc, "TrackPublishOptions", lambda **kw: options(**{**kw, "simulcast": True})
    )
    client = connect(repeat(pattern(LK_HD)), model=LK_HD)
    served = emu.wait_for_session(session_id=client.session_id)
    frames = client.frames(timeout=10)

    def layers_sent() -> list[tuple[int, int]]:
        next(frames)
        stats = published_stats(client)
        sent = [s.outbound_rtp.outbound for s in stats if s.HasField("outbound_rtp")]
        return sorted((o.frame_width, o.frame_height) for o in sent)

    def at_emulator() -> tuple[int, int] | None:
        frame = served.last_frame_in
        return None if frame is None else (frame.width, frame.height)

    # One condition: the client may step its top layer's size while its estimate grows.
    wait_until(
        lambda: (
            len(sent := layers_sent()) == 3
            and sent[-1] == (1280, 720)
            and at_emulator() == (1280, 720)
        ),
        20,
        "three layers sent, the full one 1280x720 and at the emulator",
    )


def test_passthrough_goes_after_publishing(connect, emu: Emulator) -> None:
    client = connect(repeat(FRAME))
    served = emu.wait_for_session(session_id=client.session_id)
    wait_for_frame(client.frames(timeout=10), close_to(FRAME))
    kinds = [m["type"] for m in served.messages]
    assert kinds[:2] == ["livekit_join", "set_image"]
    assert served.messages[0]["passthrough"] is True
    assert served.messages[1] == {"type": "set_image", "image_data": None, "prompt": None}


def test_bgr_frames_in_and_out(connect) -> None:
    bgr = FRAME[..., ::-1].copy()
    client = connect(repeat(bgr), pixel_format="bgr24", initial_state={"prompt": "invert"})
    wait_for_frame(client.frames(timeout=10), close_to(invert(FRAME)[..., ::-1].copy()))


def test_reconnect_replays_the_latest_prompt_and_image(connect, emu: Emulator) -> None:
    states: queue.Queue[str] = queue.Queue()
    client = connect(repeat(FRAME), initial_state={"prompt": "invert"})
    client.on("connection_change", states.put)
    client.set_image(np.full_like(FRAME, 100), prompt="grayscale")
    expected = ((grayscale(FRAME).astype(int) + 100) // 2).astype(np.uint8)
    frames = client.frames(timeout=20)
    wait_for_frame(frames, close_to(expected))
    first = client.session_id

    assert emu.drop_sessions("both") >= 1
    wait_until(lambda: client.stats["reconnects"] == 1, 20, "a reconnect")
    assert client.session_id != first
    served = emu.wait_for_session(session_id=client.session_id)
    assert served.mode == "livekit"
    replay = served.messages[1]
    assert replay["type"] == "set_image" and replay["prompt"] == "grayscale"
    assert replay["image_data"]
    wait_for_frame(frames, close_to(expected))
    seen = []
    while not states.empty():
        seen.append(states.get())
    assert "reconnecting" in seen


def test_media_comes_back_after_the_room_connection_drops(connect, emu: Emulator) -> None:
    # The room's connection lost (its peer connections and signal socket; the control
    # WebSocket stays): the client's resume is asked to rejoin (the emulator cannot
    # restart ICE), it rejoins the same room on the same signaling path, and the
    # output comes back, in the same session.
    client = connect(repeat(FRAME), initial_state={"prompt": "invert"})
    frames = client.frames(timeout=20)
    wait_for_frame(frames, close_to(invert(FRAME)))
    served = emu.wait_for_session(session_id=client.session_id)
    room = served.room
    assert room is not None and room.client is not None
    first = room.client
    assert emu.drop_sessions("peer") >= 1
    wait_until(lambda: room.client not in (None, first), 20, "the client back in its room")
    # An iterator begun now sees only frames published from now on: the rejoined room's
    # (the first iterator may still hold frames that arrived before the drop).
    again = client.frames(timeout=20)
    wait_for_frame(again, close_to(invert(FRAME)))
    assert client.session_id == served.session_id and not served.closed
    assert len(room.participations) == 2


def test_generation_ended_for_credits_ends_the_session_with_its_code(connect, emu) -> None:
    errors: queue.Queue[DecartSDKError] = queue.Queue()
    endings: queue.Queue[dict] = queue.Queue()
    client = connect(repeat(FRAME), on={"error": errors.put, "generation_ended": endings.put})
    frames = client.frames(timeout=10)
    next(frames)
    # A reason that does not end the session is reported, and streaming goes on.
    sent = {"type": "generation_ended", "seconds": 2, "reason": "paused-for-test"}
    assert emu.send(sent, session_id=client.session_id) == 1
    assert endings.get(timeout=10) == {"seconds": 2, "reason": "paused-for-test"}
    next(frames)
    assert client.state == "generating" and errors.empty()
    sent = {"type": "generation_ended", "seconds": 3, "reason": "insufficient_credits"}
    assert emu.send(sent, session_id=client.session_id) == 1
    assert endings.get(timeout=10) == {"seconds": 3, "reason": "insufficient_credits"}
    error = errors.get(timeout=10)
    assert error.code == "WEBRTC_SERVER_ERROR" and "credits" in error.message
    wait_until(lambda: client.state == "disconnected", 10, "the session ending")
    with pytest.raises(DecartSDKError):
        for _ in frames:
            pass
    assert client.stats["reconnects"] == 0


def test_queue_position_is_surfaced(connect, emu: Emulator) -> None:
    emu.faults = Faults(queue_positions=3)
    positions: list[dict[str, int]] = []
    states: list[str] = []
    signals_seen: list[int] = []

    def on_signal(sender: object, queue: dict[str, int]) -> None:
        signals_seen.append(queue["position"])

    decart_sync.signals.queue_position.connect(on_signal)
    try:
        client = connect(repeat(FRAME))
        client.on("queue_position", positions.append)
        client.on("connection_change", states.append)
        wait_until(lambda: len(positions) == 3, 5, "three queue positions")
    finally:
        decart_sync.signals.queue_position.disconnect(on_signal)
    assert [p["position"] for p in positions] == [3, 2, 1]
    assert all(p["queue_size"] == 3 for p in positions)
    assert signals_seen == [3, 2, 1]
    assert states[:4] == ["connecting", "queued", "connecting", "connected"]


def test_todays_models_default_to_livekit(connect, emu: Emulator) -> None:
    client = connect(None, model="lucy-2.1")
    served = emu.wait_for_session(session_id=client.session_id)
    assert served.mode == "livekit"
    assert (served.model.width, served.model.height, served.model.fps) == (1280, 720, 30)
    client.close()
    seed = connect(None, model=models.realtime.mirage())
    assert emu.wait_for_session(session_id=seed.session_id).mode == "webrtc"


# lucy-2.1 as each official SDK defines it: the JS SDK 0.1.20 at 1088x624 (that model's
# plain-WebRTC size), decart 0.2.4 (and the model table here) at 1280x720.
LUCY_JS = ModelDefinition("lucy-2.1", fps=30, width=1088, height=624, transport="livekit")


@pytest.mark.parametrize("model", [LUCY_JS, models.realtime("lucy-2.1")], ids=["js", "python"])
def test_lucy_2_1_takes_either_sdks_size(connect, emu: Emulator, model) -> None:
    # The emulator serves lucy-2.1 by the table (1280x720) and scales whatever size comes in.
    frame = pattern(model)
    client = connect(repeat(frame), model=model, initial_state={"prompt": "invert"})
    served = emu.wait_for_session(session_id=client.session_id)
    assert (served.model.width, served.model.height) == (1280, 720)
    wait_for_frame(client.frames(timeout=15), close_to(invert(frame)))
    arrived = served.last_frame_in
    assert arrived is not None and (arrived.width, arrived.height) == (model.width, model.height)


def test_a_broken_livekit_install_says_what_to_do(emu, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "livekit.rtc", None)
    with pytest.raises(decart_sync.InvalidOptionsError, match=r"pip install decart-sync again"):
        decart_sync.connect(None, model=LK_SMALL, api_key=KEY, base_url=emu.url, timeout=5)


# Runs in its own process: what it guards against is LiveKit aborting the process.
STATS_OF_RANDOM_VIDEO = """
import sys, time
import numpy as np
import decart_sync

model = decart_sync.ModelDefinition(
    "test-vga-lk", fps=15, width=640, height=360, transport="livekit"
)
noise = np.random.default_rng(0).integers(0, 256, (4, 360, 640, 3), np.uint8)
with decart_sync.connect(None, model=model, api_key="k", base_url=sys.argv[1]) as client:
    frames = client.frames(timeout=10)
    seen = []
    for i in range(45):  # 3 s
        client.send_frame(noise[i % 4])
        next(frames)
        if i % 5 == 4:
            seen.append(client.stats)
print(repr(seen[-1]))
"""


def test_stats_of_random_video_do_not_abort_the_process(emu: Emulator, tmp_path) -> None:
    # libwebrtc's receiver stats of the emulator's output of random pixels hold a
    # number LiveKit cannot parse, and it aborts (SIGABRT) instead of raising.
    script = tmp_path / "stats_of_noise.py"
    script.write_text(STATS_OF_RANDOM_VIDEO)
    done = subprocess.run(
        [sys.executable, str(script), emu.url], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr[-2000:]
    stats = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert stats["rtt_ms"] is not None and stats["bitrate_out_kbps"] > 0
    assert stats["packets_lost_out"] is not None
    assert stats["bitrate_in_kbps"] is None and stats["jitter_ms"] is None  # never asked for
