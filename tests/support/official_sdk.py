"""The driver process of tests/e2e/test_official_sdk.py (tests/drivers/official_client.py
in the official SDK's virtualenv) and the checks its tests share."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import DRIVERS, ROOT

from decart_sync.emulator import Emulator

DRIVER = DRIVERS / "official_client.py"
OFFICIAL_VERSION = "0.0.37"
OFFICIAL_STUN = "stun:stun.l.google.com:19302"
API_KEY = "official-sdk-test-key"
# Mean absolute error (0..255) under which a frame counts as the expected one.
TOLERANCE = 12.0
FRAMES_WANTED = 10
# Seconds for one scenario in the driver (it usually takes 2 to 4).
BUDGET = 75.0


# -- the driver process ----------------------------------------------------------


class Driver:
    """``official_client.py --hold`` in the official venv: observations, then release."""

    def __init__(self, python: str, url: str, scenario: str) -> None:
        self.cmd = [python, str(DRIVER), "--url", url, "--scenario", scenario, "--hold"]
        self.cmd += ["--budget", str(BUDGET)]
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in __exit__)
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Driver:
        # No PYTHONPATH: the official venv must not see this repository's packages.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # the SDK's model-name notices
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=ROOT,
            env=env,
        )
        threading.Thread(target=self._read, name="official-client-stdout", daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def observations(self, timeout: float = BUDGET + 30) -> dict[str, Any]:
        """The driver's report; fails the test (with its stderr) if there is none or not ok."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                pytest.fail(f"no observations from the driver in {timeout} s\n{self.stderr()}")
            if line is None:
                pytest.fail(f"the driver exited without observations\n{self.stderr()}")
            if line.startswith("OBSERVATIONS "):
                obs: dict[str, Any] = json.loads(line[len("OBSERVATIONS ") :])
                break
        if not obs.get("ok"):
            pytest.fail(
                f"the official SDK failed: {obs.get('error')}\n{obs.get('traceback', '')}\n"
                f"observations: {_short(_without(obs, 'traceback', 'sdk_log'))}\n{self.stderr()}"
            )
        return obs

    def release(self, timeout: float = 30.0) -> int:
        """Let the SDK disconnect; its exit status."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
        except OSError:
            pass  # it has exited already
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read()
        return "driver stderr:\n" + (text[-6000:] if text.strip() else "(empty)")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()


@contextlib.contextmanager
def scenario(python: str, emu: Emulator, name: str) -> Iterator[dict[str, Any]]:
    """The observations, while the SDK is still connected; on exit the SDK disconnects."""
    with Driver(python, emu.url, name) as driver:
        obs = driver.observations()
        try:
            yield obs
        finally:
            status = driver.release()
        assert status == 0, f"the driver exited with {status}\n{driver.stderr()}"


# -- helpers ---------------------------------------------------------------------


def _short(value: Any) -> Any:
    """Long strings (SDP, base64 images) shortened, for readable assertion messages."""
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    if isinstance(value, str) and len(value) > 80:
        return f"<{len(value)} chars>"
    return value


def _without(obs: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obs.items() if k not in keys}


def shapes(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Received messages with any image as "<base64>" and any SDP as "<sdp>"."""
    masks = {"image_data": "<base64>", "sdp": "<sdp>"}
    return [
        {k: masks[k] if k in masks and isinstance(v, str) else v for k, v in m.items()}
        for m in messages
    ]


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("type", "?") for m in messages]


def check_common(obs: dict[str, Any]) -> None:
    assert obs["sdk_version"] == OFFICIAL_VERSION
    # The driver kept the SDK off the network: it asked for this STUN server, got none.
    assert obs["stun_requested"] == [OFFICIAL_STUN]
    # Nothing the emulator sent failed the SDK's parsing or handling.
    assert obs["sdk_log"] == [], obs["sdk_log"]


def check_client(client: dict[str, Any]) -> None:
    assert client["errors"] == []
    # "generating" may overtake "connected" (a WebSocket message against a DTLS flight).
    assert client["states"][:1] == ["connecting"], client["states"]
    assert client["states"][1:2] in (["connected"], ["generating"]), client["states"]
    assert client["state"] in ("connected", "generating")
    assert client["session_id"]


def check_match(result: dict[str, Any], what: str) -> None:
    assert result["matched"], f"{what}: no frame within {TOLERANCE} ({result})"
    assert result["error"] < TOLERANCE, f"{what}: {result}"


def live_session(emu: Emulator, session_id: str) -> Any:
    session = emu.session(session_id)
    assert session is not None, f"no live emulator session {session_id}"
    return session


def check_query(session: Any, model: str) -> None:
    """The stream URL's query, as the emulator got it."""
    parts = urlsplit(request_path(session))
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/v1/stream"
    assert query["model"] == model
    assert query["api_key"] == API_KEY
    assert query["user_agent"].startswith(f"decart-python-sdk/{OFFICIAL_VERSION} lang/py")


def request_path(connection: Any) -> str:
    """The path and query the client's WebSocket asked for."""
    request = connection.ws.request
    assert request is not None
    return str(request.path)


def before_offer(session: Any) -> list[dict[str, Any]]:
    kinds = types(session.messages)
    assert "offer" in kinds, shapes(session.messages)
    return session.messages[: kinds.index("offer")]


def m_section(sdp: str, kind: str) -> str:
    sections = ["m=" + s for s in sdp.split("\r\nm=")[1:]]
    found = [s for s in sections if s.startswith(f"m={kind} ")]
    assert found, f"no m={kind} section in the offer"
    return found[0]


def ended(session: Any) -> bool:
    """True once the emulator has closed the session (after the SDK disconnected)."""
    return bool(session.wait(lambda: session.closed, timeout=10))
