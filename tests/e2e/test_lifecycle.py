"""close(): idempotent, bounded, and leaves no thread behind."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from helpers import KEY, SMALL, emulator_process, pattern, wait_until

import decart_sync
from decart_sync.client.realtime import CLOSE_TIMEOUT

pytestmark = pytest.mark.timeout(120)


def _mirage(url: str) -> decart_sync.RealtimeClient:
    """A full-size model: what a real user's session costs to set up and tear down."""
    return decart_sync.connect(
        None, model=decart_sync.models.realtime.mirage(), api_key=KEY, base_url=url, timeout=20
    )


def _threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.ident is not None}


def test_close_leaves_no_threads_and_is_idempotent(remote_emulator) -> None:
    before = _threads()
    for _ in range(3):
        client = _mirage(remote_emulator)
        client.send_frame(pattern(SMALL))
        assert client.read(timeout=10)[0]
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 2.5
        client.close()
        client.disconnect()
        assert client.state == "disconnected"
    leftovers = [t.name for t in threading.enumerate() if t.ident not in before]
    assert leftovers == []


def test_context_manager_closes_on_exception(remote_emulator) -> None:
    before = _threads()
    with (
        pytest.raises(ZeroDivisionError),
        _mirage(remote_emulator) as client,
    ):
        raise ZeroDivisionError
    assert client.state == "disconnected"
    assert [t.name for t in threading.enumerate() if t.ident not in before] == []


def test_close_from_another_thread_ends_a_blocked_iterator(remote_emulator) -> None:
    client = _mirage(remote_emulator)
    ended = threading.Event()

    def consume() -> None:
        for _ in client.frames():
            pass
        ended.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    client.close()
    assert ended.wait(5)
    consumer.join(5)


@contextlib.contextmanager
def _frozen_later() -> Iterator[tuple[str, Callable[[], None]]]:
    """An emulator process of this test's own, and how to freeze it (SIGSTOP)."""
    with emulator_process() as (url, proc):
        try:
            yield url, lambda: os.kill(proc.pid, signal.SIGSTOP)
        finally:
            os.kill(proc.pid, signal.SIGCONT)  # before it is terminated


class _StuckCamera:
    """A capture whose read() hangs after a while, as a camera unplugged mid-read can."""

    def __init__(self, release: threading.Event) -> None:
        self._release = release
        self.reads = 0
        self.stuck = threading.Event()

    def read(self) -> tuple[bool, np.ndarray]:
        self.reads += 1
        if self.reads > 10:
            self.stuck.set()
            self._release.wait(60)
        return True, pattern(SMALL)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="freezes a process with SIGSTOP")
@pytest.mark.parametrize("transport", ["webrtc", "livekit"])
def test_close_holds_its_bound_in_the_worst_case(transport: str) -> None:
    """A frozen service, a source stuck in read(), a handler that never returns and a
    stats timer: every step of close() has something to wait for, and it still returns
    within CLOSE_TIMEOUT, leaving behind only the threads stuck in user code."""
    before = _threads()
    release = threading.Event()
    camera = _StuckCamera(release)
    with _frozen_later() as (url, freeze):
        client = decart_sync.connect(
            camera,
            model=SMALL,
            api_key=KEY,
            base_url=url,
            timeout=20,
            transport=transport,
            stats_interval=0.05,
        )
        try:
            assert client.read(timeout=10)[0]
            client.on("connection_change", lambda state: release.wait(60))
            assert camera.stuck.wait(10)
            freeze()
            started = time.monotonic()
            client.close()
            took = time.monotonic() - started
            running = {t.name for t in threading.enumerate()}  # the service still frozen
        finally:
            release.set()
            client.close()
    # The slack covers a scheduler's delay on a loaded machine, not another step.
    assert took < CLOSE_TIMEOUT + 0.25, f"close() took {took:.2f} s"
    assert client.state == "disconnected"
    ours = {"decart-sync-loop", "decart-sync-signaling", "decart-sync-signaling-send"}
    assert not ours & running
    # Once the user's code returns, the threads it held end too.
    left = lambda: [t.name for t in threading.enumerate() if t.ident not in before]  # noqa: E731
    wait_until(lambda: not [n for n in left() if n.startswith("decart-sync")], 5, "threads ending")
