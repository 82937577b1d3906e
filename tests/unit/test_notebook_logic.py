"""decart_sync.notebook's pure logic: the rate cap, and output routed to the capturing thread."""

from __future__ import annotations

import io
import sys
import threading
from typing import Any

import pytest

from decart_sync import _process
from decart_sync.notebook.view import RateCap


def test_rate_cap_spaces_shows_and_does_not_burst_after_a_stall() -> None:
    cap = RateCap(10)
    assert cap.delay(100.0) == 0.0
    cap.shown(100.0)
    assert cap.delay(100.0) == pytest.approx(0.1)
    assert cap.delay(100.05) == pytest.approx(0.05)
    cap.shown(100.1)
    assert cap.delay(100.1) == pytest.approx(0.1)
    cap.shown(105.0)  # a stall: the next show waits a full period again
    assert cap.delay(105.0) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        RateCap(0)


def test_routed_streams_capture_only_the_capturing_thread(monkeypatch: Any) -> None:
    original = io.StringIO()
    monkeypatch.setattr(sys, "stdout", original)
    user = object()
    _process.streams.acquire(user)
    try:
        inside = threading.Event()
        release = threading.Event()
        captured: list[str] = []

        def handler_thread() -> None:
            with _process.captured() as (out, _err):
                print("from the handler")
                inside.set()
                release.wait(5)
            captured.append(out.getvalue())

        thread = threading.Thread(target=handler_thread)
        thread.start()
        assert inside.wait(5)
        print("from the main thread")  # while the other thread captures
        release.set()
        thread.join(5)
    finally:
        _process.streams.release(user)
    assert sys.stdout is original  # put back by the last release
    assert captured == ["from the handler\n"]
    assert original.getvalue() == "from the main thread\n"
