"""The emulator driven by a raw client: websocket-client signaling plus a bare aiortc peer
(tests/support/raw_client.py).

Nothing of the decart_sync client is used here, so these tests pin the
emulator's side of the protocol on their own; the transforms are checked bit
for bit in tests/unit/test_emulator_transforms.py.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from raw_client import (
    KEY,
    SMALL,
    TOLERANCE,
    RawPeer,
    Signaling,
    gradient,
    mean_error,
    png_base64,
    split_candidates,
    stream_url,
)

from decart_sync.emulator import Emulator, Faults, transforms
from decart_sync.emulator.cli import admin_url
from decart_sync.emulator.cli import main as emulator_main
from decart_sync.models import ModelDefinition

pytestmark = pytest.mark.timeout(60)


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(models={SMALL.name: SMALL}) as emulator:
        yield emulator


@pytest.fixture
def signaling(emu: Emulator) -> Iterator[Callable[..., Signaling]]:
    opened: list[Signaling] = []

    def _open(url: str | None = None) -> Signaling:
        channel = Signaling(url or stream_url(emu))
        opened.append(channel)
        return channel

    yield _open
    for channel in opened:
        channel.close()


@pytest.fixture
def peers() -> Iterator[Callable[..., RawPeer]]:
    made: list[RawPeer] = []

    def _make(send: np.ndarray | None, **options: Any) -> RawPeer:
        peer = RawPeer(send, **options)
        made.append(peer)
        return peer

    yield _make
    for peer in made:
        peer.close()


# -- signaling ----------------------------------------------------------------------


def test_missing_or_wrong_key_is_rejected(emu: Emulator, signaling) -> None:
    channel = signaling(stream_url(emu, key=None))
    assert channel.recv() == {"type": "error", "error": "Invalid API key"}
    channel.expect_closed()
    with Emulator(api_keys={"right"}, models=[SMALL]) as strict:
        wrong = Signaling(stream_url(strict, key="wrong"))
        assert wrong.recv() == {"type": "error", "error": "Invalid API key"}
        wrong.expect_closed()
        right = Signaling(stream_url(strict, key="right"))
        assert right.recv()["type"] == "session_id"
        wrong.close()
        right.close()


def test_unknown_model_is_rejected(emu: Emulator, signaling) -> None:
    channel = signaling(stream_url(emu, model="no-such-model"))
    assert channel.recv() == {"type": "error", "error": "Unknown model: no-such-model"}
    channel.expect_closed()


def test_session_id_prompt_and_image_acks(emu: Emulator, signaling) -> None:
    channel = signaling()
    hello = channel.recv()
    assert hello["type"] == "session_id"
    assert hello["server_ip"] == "127.0.0.1" and hello["server_port"] == emu.port
    session = emu.wait_for_session(session_id=hello["session_id"])
    assert session.model == SMALL

    channel.send({"type": "prompt", "prompt": "invert", "enhance_prompt": False})
    ack = channel.recv()
    assert ack == {"type": "prompt_ack", "prompt": "invert", "success": True, "error": None}
    assert session.prompt == "invert"
    for bad in ("", None, 42):
        channel.send({"type": "prompt", "prompt": bad, "enhance_prompt": True})
        ack = channel.recv()
        assert ack["type"] == "prompt_ack" and ack["prompt"] == bad
        assert ack["success"] is False and ack["error"]
    assert session.prompt == "invert"  # a refused prompt changes nothing

    reference = np.full((SMALL.height, SMALL.width, 3), 77, np.uint8)
    channel.send({"type": "set_image", "image_data": png_base64(reference), "prompt": "sepia"})
    assert channel.recv() == {"type": "set_image_ack", "success": True, "error": None}
    assert session.prompt == "sepia"
    assert session.image is not None and np.array_equal(session.image, reference)

    channel.send({"type": "set_image", "image_data": "bm90IGFuIGltYWdl"})  # "not an image"
    ack = channel.recv()
    assert ack["type"] == "set_image_ack" and ack["success"] is False and ack["error"]
    assert session.image is not None  # unchanged

    channel.send({"type": "set_image", "image_data": None, "prompt": None})
    assert channel.recv()["success"] is True
    assert session.image is None and session.prompt is None
    assert [m["type"] for m in session.messages].count("prompt") == 4


def test_unknown_and_malformed_messages_are_ignored(emu: Emulator, signaling) -> None:
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    for junk in ("{nope", "[1, 2]", '"text"', '{"no_type": 1}'):
        channel.send(junk)
    channel.send({"type": "mystery", "data": 1})
    channel.send({"type": "ice-candidate", "candidate": {"candidate": "garbage"}})
    channel.send({"type": "offer", "sdp": 12})
    channel.send({"type": "prompt", "prompt": "still here"})
    assert channel.expect("prompt_ack")["success"] is True
    assert channel.kinds() == ["session_id", "prompt_ack"]
    assert len(session.rejected) == 4
    assert [m["type"] for m in session.messages][:2] == ["mystery", "ice-candidate"]


# -- media over WebRTC ------------------------------------------------------------


def test_frames_come_back_transformed_with_ticks(emu: Emulator, signaling, peers) -> None:
    frame_in = gradient()
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    channel.send({"type": "prompt", "prompt": "invert", "enhance_prompt": True})
    assert channel.expect("prompt_ack")["success"] is True

    peer = peers(frame_in)
    offer = peer.offer().replace("s=-\r\n", "s=raw-test\r\n")
    channel.send({"type": "offer", "sdp": offer})
    answer = channel.expect("answer")["sdp"]
    assert session.offer_sdp == offer  # verbatim
    candidates = [line for line in answer.split("\r\n") if line.startswith("a=candidate:")]
    assert candidates and all(" 127." in line for line in candidates)
    peer.accept(answer)
    assert peer.wait_state({"connected", "failed"}) == "connected"

    peer.wait_frame(lambda f: f.shape == frame_in.shape and mean_error(f, 255 - frame_in) < 12)
    channel.expect("generation_started")
    assert channel.expect("generation_tick", timeout=5)["seconds"] == 1
    assert channel.expect("generation_tick", timeout=5)["seconds"] == 2
    assert session.frames_in > 0 and session.frames_out > 0

    # The prompt changes the output of a running session.
    channel.send({"type": "prompt", "prompt": "grayscale"})
    channel.expect("prompt_ack")
    grey = transforms.apply(frame_in, "grayscale", None)
    peer.wait_frame(lambda f: mean_error(f, grey) < TOLERANCE)

    # Dropping the peer alone: media ends, signaling stays.
    emu.drop_sessions("peer")
    assert peer.wait_state({"closed", "failed"}) in ("closed", "failed")
    channel.send({"type": "prompt", "prompt": "after the drop"})
    assert channel.expect("prompt_ack")["success"] is True


@pytest.mark.parametrize("trickle", ["after-offer", "before-offer"])
def test_trickled_candidates_and_the_old_message_order(
    emu: Emulator, signaling, peers, trickle: str
) -> None:
    """Older browser SDK releases (0.0.46): offer first, candidates, then the prompt."""
    frame_in = gradient()
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    peer = peers(frame_in)
    offer, candidates = split_candidates(peer.offer())
    assert candidates
    messages: list[dict[str, Any]] = [{"type": "ice-candidate", "candidate": c} for c in candidates]
    messages.append({"type": "ice-candidate", "candidate": None})  # end of candidates
    if trickle == "before-offer":
        messages.append({"type": "offer", "sdp": offer})
    else:
        messages.insert(0, {"type": "offer", "sdp": offer})
    for message in messages:
        channel.send(message)
    peer.accept(channel.expect("answer")["sdp"])
    channel.send({"type": "prompt", "prompt": "invert", "enhance_prompt": True})
    assert channel.expect("prompt_ack")["success"] is True
    assert peer.wait_state({"connected", "failed"}) == "connected"
    peer.wait_frame(lambda f: mean_error(f, 255 - frame_in) < TOLERANCE)
    assert session.prompt == "invert"


def test_subscriber_sees_the_output(emu: Emulator, signaling, peers) -> None:
    frame_in = gradient()
    missing = signaling(f"{emu.url}/subscribe/no-such-session?IP=127.0.0.1&port=1&api_key={KEY}")
    assert missing.recv() == {"type": "error", "error": "Invalid session"}
    missing.expect_closed()

    channel = signaling()
    hello = channel.recv()
    channel.send({"type": "set_image", "image_data": None, "prompt": "invert"})
    channel.expect("set_image_ack")
    publisher = peers(frame_in)
    channel.send({"type": "offer", "sdp": publisher.offer()})
    publisher.accept(channel.expect("answer")["sdp"])

    viewer_url = (
        f"{emu.url}/subscribe/{hello['session_id']}"
        f"?IP={hello['server_ip']}&port={hello['server_port']}&api_key={KEY}"
    )
    viewer_channel = signaling(viewer_url)
    viewer = peers(None, audio="recv")
    viewer_channel.send({"type": "offer", "sdp": viewer.offer()})
    viewer.accept(viewer_channel.expect("answer")["sdp"])
    viewer.wait_frame(lambda f: mean_error(f, 255 - frame_in) < TOLERANCE)
    assert viewer_channel.kinds() == ["answer"]  # no session_id, no generation events
    assert len(emu.subscribers) == 1


def test_live_avatar_follows_the_audio_level(signaling, peers) -> None:
    # The avatar model, small: the emulator's own models= entry overrides the registry's.
    small_avatar = ModelDefinition("live-avatar", fps=25, width=320, height=192)
    with Emulator(models=[small_avatar]) as emu:
        channel = signaling(stream_url(emu, model="live-avatar"))
        channel.recv()
        portrait = np.full((64, 48, 3), 200, np.uint8)  # any size: scaled to the model's
        channel.send({"type": "set_image", "image_data": png_base64(portrait), "prompt": "hi"})
        assert channel.expect("set_image_ack")["success"] is True
        peer = peers(None, audio="tone")
        channel.send({"type": "offer", "sdp": peer.offer()})
        peer.accept(channel.expect("answer")["sdp"])
        quiet = 200 * 0.25  # silence: g = 0.25
        peer.wait_frame(lambda f: f.shape == (192, 320, 3) and abs(f.mean() - quiet) < 8)
        assert peer.tone is not None
        peer.tone.amplitude = 0.5  # rms 0.35 -> g = 1
        peer.wait_frame(lambda f: abs(f.mean() - 200) < 8)
        session = emu.sessions[0]
        assert session.audio_frames_in > 0
        assert session.wait(lambda: session.audio_frames_out > 0, 5)
        assert peer.audio_frames > 0  # the echo comes back
        peer.tone.amplitude = 0.0
        peer.wait_frame(lambda f: abs(f.mean() - quiet) < 8)


# -- drops, faults, admin, shutdown --------------------------------------------------


def test_signaling_drop_leaves_media_until_the_peer_goes(emu: Emulator, signaling, peers) -> None:
    frame_in = gradient()
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    peer = peers(frame_in)
    channel.send({"type": "offer", "sdp": peer.offer()})
    peer.accept(channel.expect("answer")["sdp"])
    peer.wait_frame(lambda f: mean_error(f, frame_in) < TOLERANCE)  # passthrough
    emu.drop_sessions("signaling")
    channel.expect_closed()
    # Media goes on without signaling (fresh frames, not ones queued before the drop) ...
    frames_out = session.frames_out
    assert session.wait(lambda: session.frames_out > frames_out + 5, 5)
    assert not session.closed and session in emu.sessions
    # ... until the client gives its peer up.
    peer.close()
    assert session.wait(lambda: session.closed, 10), "the session outlived its peer"
    assert session not in emu.sessions


def test_a_vanished_client_leaves_nothing_running(emu: Emulator, signaling, peers) -> None:
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    peer = peers(gradient())
    channel.send({"type": "offer", "sdp": peer.offer()})
    peer.accept(channel.expect("answer")["sdp"])
    peer.wait_frame(lambda f: True)
    channel.ws.shutdown()  # the socket just goes: no closing handshake, the peer stays up
    assert session.wait(lambda: session.closed, 10)
    assert session.peer is not None and session.peer.state == "closed"
    assert session.pending_tasks == 0
    assert session.video_out.readyState == "ended"


@pytest.mark.parametrize("how", ["signaling", "both"])
def test_drop_closes_the_signaling(emu: Emulator, signaling, how: str) -> None:
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    assert emu.drop_sessions(how) >= 1
    channel.expect_closed()
    # No peer yet: nothing keeps the session alive without its signaling.
    assert session.wait(lambda: session.closed, 5)
    assert session not in emu.sessions and session in emu.history


def test_admin_drop_and_cli(emu: Emulator, signaling) -> None:
    channel = signaling()
    channel.recv()
    http_url = emu.url.replace("ws://", "http://")
    with urllib.request.urlopen(f"{http_url}/_emulator/sessions", timeout=5) as response:
        listed = json.loads(response.read())
    assert any(s["model"] == SMALL.name for s in listed)
    assert emulator_main(["drop", "--url", emu.url, "--how", "both"]) == 0
    channel.expect_closed()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{http_url}/_emulator/drop?how=everything", timeout=5)
    assert info.value.code == 400
    info.value.close()


def test_admin_faults_and_cli(emu: Emulator, signaling, capsys) -> None:
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    try:
        assert emulator_main(["faults", "--url", emu.url, "loss=0.1", "blackout=5,3"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert emu.faults.loss == 0.1 and emu.faults.blackout == (5.0, 3.0)
        assert session.faults is emu.faults  # a live session follows the shared plan
        assert report["faults"]["loss"] == 0.1
        ages = {s["session_id"]: s["age_s"] for s in report["sessions"]}
        assert 0 < ages[session.session_id] < 60
        # Over what it has: the loss stays.
        assert emulator_main(["faults", "--url", emu.url, "jitter_ms=30"]) == 0
        assert (emu.faults.loss, emu.faults.jitter_ms) == (0.1, 30.0)
        with pytest.raises(SystemExit):  # refused before anything is sent
            emulator_main(["faults", "--url", emu.url, "losss=0.1"])
        assert "losss" in capsys.readouterr().err
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(admin_url(emu.url, "faults", loss="2"), timeout=5)
        assert info.value.code == 400 and b"loss" in info.value.read()
        info.value.close()
        assert emulator_main(["faults", "--url", emu.url, "--reset"]) == 0
        assert emu.faults == Faults() and session.faults is emu.faults
    finally:
        emu.faults = Faults()


def test_faults() -> None:
    faults = Faults(reject_prompts="out of credits", malformed=True)
    with Emulator(models=[SMALL], faults=faults) as emu:
        channel = Signaling(stream_url(emu))
        assert channel.recv()["type"] == "session_id"
        channel.send({"type": "prompt", "prompt": "invert"})
        channel.ws.settimeout(5)
        raw = [channel.ws.recv() for _ in range(4)]  # three pieces of junk, then the ack
        ack = json.loads(raw[-1])
        assert ack["type"] == "prompt_ack" and ack["success"] is False
        assert ack["error"] == "out of credits"
        emu.faults.reject_prompts = None
        emu.faults.malformed = False
        channel.send({"type": "prompt", "prompt": "invert"})
        assert channel.recv()["success"] is True
        channel.close()


def test_close_is_bounded_and_leaves_no_threads(peers) -> None:
    before = {t.ident for t in threading.enumerate()}
    emu = Emulator(models=[SMALL]).start()
    assert "decart-sync-emulator" in {t.name for t in threading.enumerate()}
    channel = Signaling(stream_url(emu))
    channel.recv()
    peer = RawPeer(gradient())
    try:
        channel.send({"type": "offer", "sdp": peer.offer()})
        peer.accept(channel.expect("answer")["sdp"])
        peer.wait_frame(lambda f: True)  # media flowing both ways
        start = time.monotonic()
        emu.close()
        assert time.monotonic() - start < 3.0
        emu.close()  # idempotent
        channel.expect_closed()
        assert peer.wait_state({"closed", "failed"}) in ("closed", "failed")
    finally:
        channel.close()
        peer.close()
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert not left, f"threads left behind: {left}"
