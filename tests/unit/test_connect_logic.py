"""Pure logic of connecting: a deadline that pauses in a queue, the retry pauses, the
connect's own handlers called as events happen while others wait for connect to return."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from helpers import Clock

from decart_sync import _portal, options, signals
from decart_sync._portal import Deadline, Expired, within
from decart_sync.errors import InvalidOptionsError
from decart_sync.realtime.retry import backoff


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_portal.time, "monotonic", fake)
    return fake


def test_a_paused_deadline_keeps_what_was_left(clock: Clock) -> None:
    deadline = Deadline(10.0)
    clock.now += 4
    deadline.pause()
    assert deadline.paused and deadline.remaining() == pytest.approx(6.0)
    clock.now += 1000  # a long wait in the queue costs nothing
    assert deadline.remaining() == pytest.approx(6.0) and not deadline.expired()
    deadline.pause()  # twice is once
    deadline.resume()
    assert not deadline.paused
    clock.now += 5
    assert deadline.remaining() == pytest.approx(1.0)
    clock.now += 1
    assert deadline.expired()


def test_a_deadline_without_timeout_never_expires(clock: Clock) -> None:
    deadline = Deadline(None)
    deadline.pause()
    deadline.resume()
    clock.now += 1e9
    assert deadline.remaining() is None and not deadline.expired()


def test_within_waits_out_a_pause_and_times_out_after() -> None:
    async def main() -> tuple[bool, bool]:
        deadline = Deadline(0.2)
        deadline.pause()
        gate = asyncio.Event()
        # Paused: 0.2 s pass many times over while the work goes on.
        loop = asyncio.get_running_loop()
        loop.call_later(0.6, gate.set)
        finished = await within(gate.wait(), deadline)
        deadline.resume()
        never = asyncio.Event()
        try:
            await within(never.wait(), deadline)
        except Expired:
            return finished, True
        return finished, False

    assert asyncio.run(main()) == (True, True)


def test_retry_pauses_are_the_official_sdks() -> None:
    assert list(backoff()) == [1.0, 2.0, 4.0, 8.0, 10.0]


def test_connect_handlers_are_checked() -> None:
    handlers = options.handlers({"queue_position": print, "connectionChange": print})
    assert [event for event, _ in handlers] == [signals.QUEUE_POSITION, signals.CONNECTION_CHANGE]
    assert options.handlers(None) == []
    with pytest.raises(InvalidOptionsError, match="unknown event 'queue'"):
        options.handlers({"queue": print})
    with pytest.raises(InvalidOptionsError, match="must be callable"):
        options.handlers({"error": "print"})
    with pytest.raises(InvalidOptionsError, match="on must be a dict"):
        options.handlers([("error", print)])  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match="queue_timeout"):
        options.queue_timeout(0)
    assert options.queue_timeout(None) is None and options.queue_timeout(3) == 3.0


def test_early_handlers_hear_at_once_and_the_rest_after_release() -> None:
    sender = object()
    seen: list[tuple[str, Any]] = []
    cond = threading.Condition()

    def record(who: str) -> Any:
        def handler(value: Any) -> None:
            with cond:
                seen.append((who, value))
                cond.notify_all()

        return handler

    dispatcher = signals.Dispatcher(sender)
    handlers = signals.Handlers(sender)
    try:
        dispatcher.early(handlers.add(signals.QUEUE_POSITION, record("early")))
        handlers.add(signals.QUEUE_POSITION, record("late"))
        dispatcher.emit(signals.QUEUE_POSITION, 2)
        dispatcher.emit(signals.QUEUE_POSITION, 1)
        with cond:
            assert cond.wait_for(lambda: len(seen) == 2, 5)
        assert seen == [("early", 2), ("early", 1)]  # the late one waits for release
        dispatcher.release()
        dispatcher.emit(signals.QUEUE_POSITION, 0)
        with cond:
            assert cond.wait_for(lambda: len(seen) == 6, 5)
        # Held events reach the late handler once, in order; nobody hears anything twice.
        assert seen[2:] == [("late", 2), ("late", 1), ("early", 0), ("late", 0)]
    finally:
        handlers.clear()
        dispatcher.stop()
