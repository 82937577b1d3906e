"""The official Python SDK, unchanged, against the emulator.

``decart[realtime]==0.0.37`` is installed from PyPI into its own virtualenv,
``.bench/official-venv`` (made once, shared with the benchmark; never a
dependency of this package), and ``tests/drivers/official_client.py`` drives its async
realtime client there against an in-process `Emulator`. The driver
prints what the SDK saw and keeps its connections open until released on
stdin, so each test checks both ends: the SDK's observations, and what the
emulator received and did for that session while it is live.

Any difference between what the SDK sends and what the emulator expects is a
bug in the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from official_sdk import (
    API_KEY,
    FRAMES_WANTED,
    OFFICIAL_VERSION,
    before_offer,
    check_client,
    check_common,
    check_match,
    check_query,
    ended,
    live_session,
    m_section,
    request_path,
    scenario,
    shapes,
    types,
)

from decart_sync.emulator import Emulator

# The first test also waits for the official SDK's install (benchmarks/venvs.py).
pytestmark = pytest.mark.timeout(720)

# -- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


# -- scenarios -------------------------------------------------------------------


def test_camera_initial_prompt_set_prompt_set_image(official_python: str, emu: Emulator) -> None:
    with scenario(official_python, emu, "camera") as obs:
        check_common(obs)
        check_client(obs["client"])
        check_match(obs["inverted"], "initial prompt 'invert'")
        assert obs["inverted"]["frames"] >= FRAMES_WANTED
        check_match(obs["grayscale"], "set_prompt('grayscale')")
        check_match(obs["with_image"], "set_image(png) blended over the grayscale output")
        assert obs["frame_size"] == [1280, 704]  # mirage's size; the SDK sent 320x192
        assert obs["kinds"] == ["video"]
        assert obs["client"]["ticks"][:1] == [1]
        assert "generating" in obs["client"]["states"]

        session = live_session(emu, obs["client"]["session_id"])
        assert session.model.name == "mirage"
        check_query(session, "mirage")
        # The initial prompt, acked, before any SDP; nothing else first.
        assert shapes(before_offer(session)) == [
            {"type": "prompt", "prompt": "invert", "enhance_prompt": True}
        ]
        later = [m for m in session.messages if m["type"] in ("prompt", "set_image")][1:]
        assert shapes(later) == [
            {"type": "prompt", "prompt": "grayscale", "enhance_prompt": True},
            # set_image without a prompt: the key is absent, and the prompt stays.
            {"type": "set_image", "image_data": "<base64>"},
        ]
        assert session.prompt == "grayscale"
        assert session.enhance_prompt is True
        assert session.image is not None
        assert session.frames_in > 0 and session.frames_out >= FRAMES_WANTED
        assert session.rejected == []
        assert "m=video" in (session.offer_sdp or "")
    assert ended(session)


def test_passthrough_then_set(official_python: str, emu: Emulator) -> None:
    with scenario(official_python, emu, "passthrough") as obs:
        check_common(obs)
        check_client(obs["client"])
        check_match(obs["unchanged"], "passthrough")
        check_match(obs["set_applied"], "set(prompt='invert', image=png)")

        session = live_session(emu, obs["client"]["session_id"])
        check_query(session, "mirage")
        # No initial state given: the SDK's explicit passthrough, before the offer.
        assert shapes(before_offer(session)) == [
            {"type": "set_image", "image_data": None, "prompt": None}
        ]
        updates = [m for m in session.messages if m["type"] in ("prompt", "set_image")][1:]
        assert shapes(updates) == [
            {
                "type": "set_image",
                "image_data": "<base64>",
                "prompt": "invert",
                "enhance_prompt": True,
            }
        ]
        assert session.prompt == "invert"
        assert session.image is not None
    assert ended(session)


def test_initial_image_and_prompt(official_python: str, emu: Emulator) -> None:
    with scenario(official_python, emu, "initial_image") as obs:
        check_common(obs)
        check_client(obs["client"])
        check_match(obs["with_image"], "initial image blended over 'invert'")
        check_match(obs["cleared"], "set_image(None) clears the image, keeps the prompt")
        assert obs["frame_size"] == [1088, 624]  # lucy-2.1

        session = live_session(emu, obs["client"]["session_id"])
        assert session.model.name == "lucy-2.1"
        check_query(session, "lucy-2.1")
        first = before_offer(session)
        assert shapes(first) == [
            {
                "type": "set_image",
                "image_data": "<base64>",
                "prompt": "invert",
                "enhance_prompt": True,
            }
        ]
        updates = [m for m in session.messages if m["type"] in ("prompt", "set_image")][1:]
        assert updates == [{"type": "set_image", "image_data": None}]
        assert session.image is None
        assert session.prompt == "invert"
    assert ended(session)


def test_live_avatar_play_audio(official_python: str, emu: Emulator) -> None:
    with scenario(official_python, emu, "live_avatar") as obs:
        check_common(obs)
        check_client(obs["client"])
        check_match(obs["silent"], "the portrait at silence")
        check_match(obs["loud"], "the portrait while the tone plays")
        check_match(obs["silent_again"], "the portrait after play_audio")
        assert obs["loud_while_playing"], "the avatar brightened only after play_audio returned"
        # play_audio plays in real time (a 1.5 s tone) and returns when it has finished.
        assert 1.2 <= obs["play_audio_s"] < 10, obs["play_audio_s"]
        assert obs["echo_frames"] > 0 and obs["echo_max_rms"] > 0.1, obs
        assert sorted(obs["kinds"]) == ["audio", "video"]
        assert obs["frame_size"] == [1280, 720]

        session = live_session(emu, obs["client"]["session_id"])
        assert session.model.name == "live_avatar"
        check_query(session, "live_avatar")
        first = before_offer(session)
        # The data: URL travels as bare base64.
        assert shapes(first) == [
            {
                "type": "set_image",
                "image_data": "<base64>",
                "prompt": "smile",
                "enhance_prompt": True,
            }
        ]
        assert not first[0]["image_data"].startswith("data:")
        assert session.prompt == "smile"
        assert session.image is not None
        # A recvonly video transceiver, and the SDK's audio track (silence until played).
        sdp = session.offer_sdp or ""
        assert "a=recvonly" in m_section(sdp, "video")
        assert "a=sendrecv" in m_section(sdp, "audio")
        assert session.audio_frames_in > 0 and session.audio_frames_out > 0
    assert ended(session)


def test_subscribe_with_token(official_python: str, emu: Emulator) -> None:
    with scenario(official_python, emu, "subscribe") as obs:
        check_common(obs)
        check_client(obs["client"])
        check_match(obs["publisher_inverted"], "the publisher's output")
        check_match(obs["viewer_inverted"], "the viewer's copy of the output")
        assert obs["token"] == {
            "sid": obs["client"]["session_id"],
            "ip": "127.0.0.1",
            "port": emu.port,
        }
        assert obs["viewer"]["errors"] == []
        assert obs["viewer"]["states"][:2] == ["connecting", "connected"]
        assert obs["viewer_frame_size"] == [1280, 704]
        assert obs["viewer_kinds"] == ["video"]  # mirage has no audio to relay

        session = live_session(emu, obs["client"]["session_id"])
        viewers = [s for s in emu.subscribers if s.target is session]
        assert len(viewers) == 1 and session.subscribers == {viewers[0]}
        viewer = viewers[0]
        # A viewer sends no initial state: its offer (recvonly video and audio) only.
        assert types(viewer.messages) == ["offer"]
        assert "a=recvonly" in m_section(viewer.offer_sdp or "", "video")
        assert "a=recvonly" in m_section(viewer.offer_sdp or "", "audio")
        parts = urlsplit(request_path(viewer))
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        assert parts.path == f"/subscribe/{session.session_id}"
        assert (query["IP"], query["port"], query["api_key"]) == (
            "127.0.0.1",
            str(emu.port),
            API_KEY,
        )
    assert ended(session)
    assert ended(viewer)


def test_invalid_key_fails_connect_without_retries(official_python: str, emu: Emulator) -> None:
    with scenario(official_python, emu, "bad_key") as obs:
        assert obs["sdk_version"] == OFFICIAL_VERSION
        assert obs["raised"] == "WebRTCError", obs
        assert "Invalid API key" in obs["message"]
        # The SDK retries connect 5 times (1 s, 2 s, 4 s, ...) unless the error's text
        # marks it permanent ("invalid api key" is one): the emulator's text must do so.
        assert not [line for line in obs["sdk_log"] if "Retrying" in line], obs["sdk_log"]
        assert obs["seconds"] < 5
        assert "Received error from server: Invalid API key" in "\n".join(obs["sdk_log"])
