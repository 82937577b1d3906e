"""Ctrl-C, leaks, exit without close(), secrets, and input that must never be sent."""

from __future__ import annotations

import _thread
import gc
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable

import numpy as np
import pytest
from helpers import KEY, SMALL, pattern, repeat, wait_until

import decart_sync
from decart_sync import DecartSDKError
from decart_sync.emulator import Emulator, Faults
from decart_sync.realtime import images

pytestmark = pytest.mark.timeout(180)


def _interrupt_when(condition: Callable[[], bool]) -> dict[str, float]:
    """Ctrl-C the main thread once ``condition`` holds; returns when it was sent."""
    sent: dict[str, float] = {}

    def watch() -> None:
        deadline = time.monotonic() + 20
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a condition, not standing in for one
        sent["at"] = time.monotonic()
        _thread.interrupt_main()

    threading.Thread(target=watch, daemon=True).start()
    return sent


def _decart_threads() -> list[str]:
    """Our threads still alive, each with where it is stuck (so a failure says why)."""
    stacks = sys._current_frames()
    return [
        f"{t.name}\n" + "".join(traceback.format_stack(stacks[t.ident]))
        if t.ident in stacks
        else t.name
        for t in threading.enumerate()
        if t.name.startswith("decart-sync") and not t.name.startswith("decart-sync-emulator")
    ]


def test_ctrl_c_during_connect(emulator: Emulator) -> None:
    emulator.faults = Faults(no_answer=True)
    try:
        before = len(emulator.history)
        sent = _interrupt_when(lambda: len(emulator.history) > before)
        with pytest.raises(KeyboardInterrupt):
            decart_sync.connect(None, model=SMALL, api_key=KEY, base_url=emulator.url, timeout=30)
        assert time.monotonic() - sent["at"] < 1.0
    finally:
        emulator.faults = Faults()
    assert _decart_threads() == []


def test_ctrl_c_during_set_prompt_and_frames(connect, emulator: Emulator) -> None:
    client = connect(repeat(pattern()))
    session = emulator.wait_for_session(session_id=client.session_id)
    emulator.faults = Faults(ack_delay=30)
    try:
        sent = _interrupt_when(lambda: any(m.get("prompt") == "x" for m in session.messages))
        with pytest.raises(KeyboardInterrupt):
            client.set_prompt("x", timeout=30)
        assert time.monotonic() - sent["at"] < 1.0
    finally:
        emulator.faults = Faults()
    client.set_prompt("still usable")

    emulator.faults = Faults(freeze_media=True)
    try:
        frames = client.frames()
        waiting = threading.Event()
        sent = _interrupt_when(waiting.is_set)
        with pytest.raises(KeyboardInterrupt):
            waiting.set()  # media is frozen: after what is in flight, frames() blocks
            for _ in frames:
                pass
        assert time.monotonic() - sent["at"] < 1.0
    finally:
        emulator.faults = Faults()
    client.close()
    assert _decart_threads() == []


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_fifty_cycles_leave_threads_and_fds_flat(remote_emulator: str) -> None:
    def cycle() -> None:
        with decart_sync.connect(
            repeat(pattern()), model=SMALL, api_key=KEY, base_url=remote_emulator, timeout=20
        ) as client:
            assert client.read(timeout=10)[0]

    cycle()  # first-use set-up (codecs, imports) is not a leak
    threads, fds = {t.ident for t in threading.enumerate()}, _fds()
    for _ in range(50):
        cycle()
    assert [t.name for t in threading.enumerate() if t.ident not in threads] == []
    assert _fds() == fds


def test_a_dropped_connection_is_freed_at_once(connect, emulator: Emulator) -> None:
    """Not left to the cyclic GC: a long-running client must not hoard dead connections."""
    client = connect(repeat(pattern()))
    assert client.read(timeout=10)[0]
    old = weakref.ref(client._session._attempt)
    gc.disable()
    try:
        emulator.drop_sessions("both")
        wait_until(lambda: client.stats["reconnects"] == 1, 20, "the reconnect")
        wait_until(lambda: old() is None, 5, "the old connection's release")
    finally:
        gc.enable()
    assert client.read(timeout=10)[0]


def test_exit_without_close_does_not_hang(remote_emulator: str) -> None:
    script = (
        "import decart_sync, numpy as np\n"
        "from decart_sync import ModelDefinition\n"
        f"c = decart_sync.connect(None, model={SMALL!r}, api_key='k',\n"
        f"    base_url={remote_emulator!r})\n"
        "c.send_frame(np.zeros((64, 64, 3), np.uint8))\n"
        "assert c.read(timeout=10)[0]\n"
        "print('exiting without close')\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "exiting without close" in done.stdout
    assert time.monotonic() - started < 15


def test_the_api_key_never_leaks(caplog, tmp_path) -> None:
    secret = "sk-very-secret-key-4242"
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with Emulator(api_keys={secret}, models={SMALL.name: SMALL}) as emu:
        client = decart_sync.connect(
            repeat(pattern()), model=SMALL, api_key=secret, base_url=emu.url, timeout=20
        )
        texts += [repr(client), str(client.stats), str(client.subscribe_token)]
        client.set_prompt("invert")
        client.set_image(pattern())
        assert client.read(timeout=10)[0]
        emu.drop_sessions("signaling")
        assert client.read(timeout=20)[0]
        client.close()
        for bad in (secret + "x", secret[:-1]):
            with pytest.raises(DecartSDKError) as info:
                decart_sync.connect(None, model=SMALL, api_key=bad, base_url=emu.url, timeout=10)
            texts += [str(info.value), repr(info.value), str(info.value.cause)]
        with pytest.raises(DecartSDKError) as info:
            decart_sync.connect(None, model=SMALL, api_key=secret, base_url="ws://127.0.0.1:9")
        texts += [str(info.value), repr(info.value), str(info.value.cause)]
    texts += [repr(decart_sync.DecartClient(api_key=secret, realtime_base_url="ws://127.0.0.1:1"))]
    records = [r.getMessage() + str(r.exc_text or "") for r in caplog.records]
    assert len(records) > 20  # DEBUG really was captured
    for text in texts + records:
        assert secret not in text and secret[:-1] not in text
    assert "decart-sync/" in decart_sync.options.user_agent() and secret not in (
        decart_sync.options.user_agent()
    )


def test_bad_input_is_refused_before_sending(connect, emulator: Emulator, tmp_path) -> None:
    client = connect(repeat(pattern()))
    session = emulator.wait_for_session(session_id=client.session_id)
    sent_before = len(session.messages)

    def code(call: Callable[..., object], *args: object, **kwargs: object) -> str:
        with pytest.raises(DecartSDKError) as info:
            call(*args, **kwargs)
        return info.value.code

    nan = np.full((32, 32, 3), np.nan, np.float32)
    assert code(client.send_frame, nan) == "INVALID_INPUT"
    assert code(client.send_frame, np.zeros((4, 4, 3, 1), np.uint8)) == "INVALID_INPUT"
    assert code(client.send_frame, np.zeros((4, 4, 4), np.uint8)) == "INVALID_INPUT"
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * (images.MAX_IMAGE_BYTES + 1))
    assert code(client.set_image, str(big)) == "INVALID_INPUT"
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/portrait.png"
        started = time.monotonic()
        assert code(client.set_image, url, timeout=1.5) == "INVALID_INPUT"
        assert time.monotonic() - started < 4
    for scheme in ("ftp://127.0.0.1/a.png", "file:///etc/hostname", "gopher://127.0.0.1/"):
        assert code(client.set_image, scheme) == "INVALID_INPUT"
    assert code(decart_sync.subscribe, "bm90IGpzb24=", api_key=KEY) == "INVALID_INPUT"
    assert len(session.messages) == sent_before  # nothing reached the service
    client.set_prompt("fine")  # and the session is still usable


def test_emulator_binds_loopback_by_default() -> None:
    with Emulator() as emu:
        assert emu.host == "127.0.0.1"
        assert emu.url.startswith("ws://127.0.0.1:")
