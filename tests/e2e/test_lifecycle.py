"""close(): idempotent, bounded, and leaves no thread behind."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import KEY, SMALL, pattern

import decart_sync

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
