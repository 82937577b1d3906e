"""Today's official Python SDK's client tokens, unchanged, against the emulator's REST API.

``decart[realtime]==0.2.4`` in its own virtualenv (``.bench/official-livekit-venv``)
runs ``tests/drivers/official_tokens.py``: ``tokens.create`` with and without
options, ``tokens.decode`` of the signed form, and a client token refused more
tokens; then its realtime client opens a session with the signed form as its key.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import DRIVERS

from decart_sync.emulator import Emulator

pytestmark = pytest.mark.timeout(720)  # the first run also installs the SDK

API_KEY = "official-tokens-test-key"


def run(python: str, driver: str, *args: str) -> dict:
    done = subprocess.run(
        [python, str(DRIVERS / driver), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_official_tokens_and_the_signed_form_opening_a_session(
    official_livekit_python: str,
) -> None:
    with Emulator(api_keys=API_KEY) as emu:
        seen = run(official_livekit_python, "official_tokens.py", emu.rest_url, API_KEY)
        plain, scoped, claims = seen["plain"], seen["scoped"], seen["claims"]
        for token in (plain, scoped):
            assert token["api_key"].startswith("ek_") and token["token"].count(".") == 2
            assert emu.tokens.get(token["token"]) is emu.tokens.get(token["api_key"])
        assert plain["permissions"] is None and plain["constraints"] is None
        assert scoped["permissions"] == {"models": ["lucy-2.1"], "origins": ["https://app.example"]}
        assert scoped["constraints"] == {"realtime": {"maxSessionDuration": 300}}
        # What the SDK decodes from the signed form is what was asked for.
        assert claims["allowed_models"] == ["lucy-2.1"]
        assert claims["allowed_origins"] == ["https://app.example"]
        assert claims["expires_at"] == scoped["expires_at"]
        assert claims["user_id"] and claims["claims"]["iss"] == "https://platform.decart.ai"
        assert seen["refused_with_api_key"] == seen["refused_with_token"] == 403

        # The signed form is what a frontend gets: the SDK's realtime client takes it as a key.
        fresh = run(official_livekit_python, "official_tokens.py", emu.rest_url, API_KEY)
        signed = fresh["plain"]["token"]
        session_seen = run(official_livekit_python, "official_livekit_client.py", emu.url, signed)
        assert session_seen["state_before_disconnect"] == "generating"
        [session] = [s for s in emu.history if s.frames_in > 0]
        assert session.model.name == "lucy-2.1"
