"""Signals: order, thread, ticks, and events held during connect."""

from __future__ import annotations

import queue
import threading

import pytest
from helpers import pattern

from decart_sync import signals

pytestmark = pytest.mark.timeout(90)


def test_events_during_connect_reach_handlers_registered_after(connect) -> None:
    seen: queue.Queue[tuple[str, str]] = queue.Queue()
    client = connect(None)
    client.on("connectionChange", lambda state: seen.put((state, threading.current_thread().name)))
    state, thread = seen.get(timeout=5)
    assert state == "connecting"
    assert thread == "decart-sync-events"
    assert seen.get(timeout=5)[0] == "connected"


def test_states_ticks_and_thread(connect) -> None:
    states: list[str] = []
    ticks: queue.Queue[int] = queue.Queue()
    threads: set[str] = set()

    def on_state(sender, state: str) -> None:
        states.append(state)
        threads.add(threading.current_thread().name)

    def on_tick(sender, seconds: int) -> None:
        ticks.put(seconds)
        threads.add(threading.current_thread().name)

    client = connect(None)
    signals.connection_changed.connect(on_state, sender=client)
    signals.generation_tick.connect(on_tick, sender=client)
    try:
        client.send_frame(pattern())
        got = [ticks.get(timeout=10) for _ in range(3)]
        assert got == sorted(got) and got[0] >= 1 and len(set(got)) == 3
        assert states[:2] == ["connecting", "connected"]
        assert "generating" in states
        assert client.state == "generating"
        assert threads == {"decart-sync-events"}
    finally:
        signals.connection_changed.disconnect(on_state, sender=client)
        signals.generation_tick.disconnect(on_tick, sender=client)


def test_a_raising_handler_does_not_stop_others(connect) -> None:
    received: queue.Queue[str] = queue.Queue()

    def bad(state: str) -> None:
        raise RuntimeError("handler bug")

    client = connect(None)
    client.on("connection_change", bad)
    client.on("connection_change", received.put)
    assert received.get(timeout=5) == "connecting"
    client.off("connection_change", bad)
    client.close()
    states = []
    while not received.empty():
        states.append(received.get())
    assert states[-1] == "disconnected"
