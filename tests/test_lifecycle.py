"""close(): idempotent, bounded, and leaves no thread behind."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import KEY, SMALL, pattern

import decart_sync

pytestmark = pytest.mark.timeout(120)


def _threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.ident is not None}


def test_close_leaves_no_threads_and_is_idempotent(remote_emulator) -> None:
    before = _threads()
    for _ in range(3):
        client = decart_sync.connect(
            None,
            model=decart_sync.models.realtime.mirage(),
            api_key=KEY,
            base_url=remote_emulator,
            timeout=20,
        )
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
        decart_sync.connect(
            None,
            model=decart_sync.models.realtime.mirage(),
            api_key=KEY,
            base_url=remote_emulator,
            timeout=20,
        ) as client,
    ):
        raise ZeroDivisionError
    assert client.state == "disconnected"
    assert [t.name for t in threading.enumerate() if t.ident not in before] == []


def test_close_from_another_thread_ends_a_blocked_iterator(remote_emulator) -> None:
    client = decart_sync.connect(
        None,
        model=decart_sync.models.realtime.mirage(),
        api_key=KEY,
        base_url=remote_emulator,
        timeout=20,
    )
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
