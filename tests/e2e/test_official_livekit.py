"""Today's official Python SDK, unchanged, against the emulator's LiveKit mode.

``decart[realtime]==0.2.4`` (built on the ``livekit`` package) is installed from
PyPI into its own virtualenv, ``.bench/official-livekit-venv`` (never a
dependency of this package), and ``tests/drivers/official_livekit_client.py`` drives it
there: ``lucy-2.1`` at the SDK's own 1280x720, an initial prompt, frames
through ``rtc.VideoSource``, transformed frames back, a prompt change, ticks,
and a clean disconnect. Both ends are checked: what the SDK saw, and what the
emulator received. Any difference is a bug in the emulator. On both LiveKit
signaling paths: ``/rtc/v1`` (one peer connection, which the SDK's ``livekit``
1.2.1 tries first) and the classic ``/rtc`` it falls back to.
"""

from __future__ import annotations

import json
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import DRIVERS, SIGNALING, took_its_path

from decart_sync.emulator import Emulator

pytestmark = pytest.mark.timeout(720)  # the first run also installs the SDK

DRIVER = DRIVERS / "official_livekit_client.py"
VERSION = "0.2.4"
API_KEY = "official-livekit-test-key"


@pytest.mark.parametrize("v1", list(SIGNALING.values()), ids=list(SIGNALING))
def test_official_sdk_over_livekit(official_livekit_python: str, v1: bool) -> None:
    with Emulator(api_keys=API_KEY, livekit_v1=v1) as emu, took_its_path(emu) as joined:
        run = subprocess.run(
            [official_livekit_python, str(DRIVER), emu.url, API_KEY],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        seen = json.loads(run.stdout.strip().splitlines()[-1])
        [session] = emu.history
        assert session.wait(lambda: session.closed, 10), "the session outlived the disconnect"
    [participant] = joined  # the SDK's, on the emulator's path (checked as the block ended)
    assert participant.identity.startswith("client-") and not participant.viewer

    # What the SDK saw.
    assert seen["inverted_error"] < 12 and seen["grayscale_error"] < 12
    assert seen["ticks"] and seen["ticks"][0] >= 1
    assert seen["state_before_disconnect"] == "generating"
    assert seen["state_after_disconnect"] == "disconnected"
    assert seen["session_id"] == session.session_id
    assert seen["subscribe_token"]

    # What the emulator received: LiveKit mode, today's model, the SDK's own URL.
    assert session.mode == "livekit"
    assert (session.model.width, session.model.height, session.model.fps) == (1280, 720, 30)
    assert session.frames_in > 0 and session.frames_out > 0
    kinds = [m["type"] for m in session.messages]
    assert kinds == ["livekit_join", "prompt", "prompt"]
    assert session.messages[1] == {"type": "prompt", "prompt": "invert", "enhance_prompt": False}
    parts = urlsplit(session.ws.request.path)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/v1/stream"
    assert query["model"] == "lucy-2.1" and query["livekit_early_room_info"] == "true"
    assert query["user_agent"].startswith(f"decart-python-sdk/{VERSION} lang/py")
