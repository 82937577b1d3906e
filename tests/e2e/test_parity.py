"""The official SDKs' connect() options and their extras, over real WebRTC."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest
from helpers import KEY, SMALL, close_to, grayscale, invert, pattern, wait_for_frame

import decart_sync
from decart_sync import models
from decart_sync.realtime.images import encode_png

pytestmark = pytest.mark.timeout(120)


def test_customize_offer_edit_reaches_the_server(connect, emulator) -> None:
    seen_threads: list[str] = []

    def customize(offer) -> None:
        seen_threads.append(threading.current_thread().name)
        offer.sdp = offer.sdp.replace("s=-\r\n", "s=decart-sync-test\r\n")

    client = connect(None, customize_offer=customize)
    session = next(s for s in emulator.sessions if s.session_id == client.session_id)
    assert "s=decart-sync-test\r\n" in session.offer_sdp
    assert seen_threads and seen_threads[0] != "decart-sync-loop"
    # VP8 preferred, with the browser clients' bitrate hints.
    assert "x-google-min-bitrate=300;x-google-start-bitrate=600" in session.offer_sdp
    video = session.offer_sdp.split("m=video")[1].split("m=")[0]
    assert "VP8/90000" in video and "H264" not in video


def test_a_failing_customize_offer_is_reported_as_such(connect) -> None:
    def broken(offer) -> None:
        raise RuntimeError("my hook is broken")

    def blanked(offer) -> None:
        offer.sdp = ""

    causes = []
    for hook in (broken, blanked):
        with pytest.raises(decart_sync.DecartSDKError) as info:
            connect(None, customize_offer=hook)
        assert info.value.code == "INVALID_OPTIONS"
        assert "customize_offer" in info.value.message
        causes.append(info.value.cause)
    assert isinstance(causes[0], RuntimeError)  # the hook's own error is kept
    client = connect(None)  # nothing was left half-open
    assert client.is_connected()


def test_on_remote_stream_gets_the_raw_track(connect) -> None:
    got: queue.Queue[object] = queue.Queue()
    client = connect(None, on_remote_stream=got.put)
    track = got.get(timeout=10)
    assert getattr(track, "kind", None) == "video"
    client.send_frame(pattern())
    assert client.read(timeout=10)[0]  # our own consumer still gets every frame


def test_initial_image_and_prompt(connect, tmp_path) -> None:
    frame_in = pattern()
    reference = np.full_like(frame_in, 100)
    client = connect(
        None,
        initial_state={"image": encode_png(reference), "prompt": {"text": "invert"}},
    )
    client.send_frame(frame_in)
    expected = ((invert(frame_in).astype(np.uint16) + reference) // 2).astype(np.uint8)
    wait_for_frame(client.frames(timeout=10), close_to(expected))


def test_set_with_prompt_and_image(connect) -> None:
    frame_in = pattern()
    client = connect(None)
    client.send_frame(frame_in)
    reference = np.full_like(frame_in, 30)
    client.set(prompt="grayscale", image=reference)
    expected = ((grayscale(frame_in).astype(np.uint16) + reference) // 2).astype(np.uint8)
    wait_for_frame(client.frames(timeout=10), close_to(expected))
    client.set(prompt="invert")  # no image given: set() clears it
    wait_for_frame(client.frames(timeout=10), close_to(invert(frame_in)))


def test_live_avatar_audio_drives_the_frames(connect) -> None:
    portrait = np.full((64, 64, 3), 200, np.uint8)
    client = connect(
        None,
        model=models.realtime.live_avatar(),
        initial_state={"image": portrait, "prompt": {"text": "smile"}},
        timeout=30,
    )
    frames = client.frames(timeout=15)
    silent = 0.25 * 200
    wait_for_frame(frames, lambda f: abs(float(f.mean()) - silent) < 12, timeout=30)
    rate = 16_000
    t = np.arange(int(rate * 1.5)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    player = threading.Thread(target=client.play_audio, args=(tone,), kwargs={"sample_rate": rate})
    player.start()
    wait_for_frame(frames, lambda f: float(f.mean()) > 150, timeout=15)  # loud: bright
    player.join(15)
    assert not player.is_alive()
    assert client.stats["audio_chunks_played"] >= 70
    assert client.stats["audio_frames_received"] > 0  # the service sends audio back
    wait_for_frame(frames, lambda f: abs(float(f.mean()) - silent) < 12)  # silence again


def test_subscriber_follows_the_publisher(connect, emulator) -> None:
    frame_in = pattern()
    publisher = connect(None)
    publisher.send_frame(frame_in)
    token = publisher.subscribe_token
    assert token
    with decart_sync.subscribe(
        token, api_key=KEY, base_url=emulator.url, model=SMALL, timeout=20
    ) as viewer:
        frames = viewer.frames(timeout=10)
        wait_for_frame(frames, close_to(frame_in))
        publisher.set_prompt("invert")
        wait_for_frame(frames, close_to(invert(frame_in)))


def test_reconnect_replays_the_latest_prompt(connect, emulator) -> None:
    frame_in = pattern()
    states: queue.Queue[str] = queue.Queue()
    client = connect(None, initial_state={"prompt": {"text": "sepia"}})
    client.on("connection_change", states.put)
    client.send_frame(frame_in)
    frames = client.frames(timeout=20)
    client.set_prompt("invert")
    wait_for_frame(frames, close_to(invert(frame_in)))
    old_session = client.session_id
    emulator.drop_sessions("both")
    seen: list[str] = []
    while not seen or seen[-1] not in ("connected", "generating") or "reconnecting" not in seen:
        seen.append(states.get(timeout=20))
    assert "reconnecting" in seen and "disconnected" not in seen
    assert client.session_id != old_session
    # The same iterator goes on, showing the latest prompt, not the initial one.
    wait_for_frame(frames, close_to(invert(frame_in)), timeout=20)
    assert client.stats["reconnects"] == 1
