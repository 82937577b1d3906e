"""The stoppable background thread every helper thread is built on (decart_sync._threads)."""

from __future__ import annotations

import logging
import queue
import threading
import time

import pytest

from decart_sync._threads import Worker

pytestmark = pytest.mark.timeout(30)


def test_stop_ends_the_thread_within_the_bound() -> None:
    worker = Worker(lambda: worker.stopping.wait(60), "decart-sync-test")
    worker.start()
    assert worker.is_alive()
    started = time.monotonic()
    assert worker.stop(5.0)
    assert time.monotonic() - started < 1.0
    assert not worker.is_alive()
    assert "decart-sync-test" not in {t.name for t in threading.enumerate()}


def test_stop_returns_at_the_bound_when_the_thread_will_not_end() -> None:
    release = threading.Event()
    worker = Worker(lambda: release.wait(60), "decart-sync-test-stuck").start()
    try:
        started = time.monotonic()
        assert not worker.stop(0.2)
        assert 0.15 < time.monotonic() - started < 1.0
        assert worker.is_alive()
    finally:
        release.set()
        assert worker.join(5.0)


def test_wake_unblocks_a_thread_waiting_on_something_else_and_is_called_once() -> None:
    items: queue.SimpleQueue[object] = queue.SimpleQueue()
    woken: list[int] = []

    def wake() -> None:
        woken.append(1)
        items.put(None)

    worker = Worker(lambda: items.get(), "decart-sync-test-queue", wake=wake).start()
    assert worker.stop(5.0)
    worker.stop(5.0)
    assert woken == [1]


def test_stop_from_its_own_thread_does_not_deadlock() -> None:
    returned = threading.Event()
    results: list[bool] = []

    def run() -> None:
        results.append(worker.stop(5.0))  # e.g. an event handler closing its client
        returned.set()

    worker = Worker(run, "decart-sync-test-self")
    worker.start()
    assert returned.wait(5.0)
    assert results == [False]  # it could not have ended: it was still running this
    assert worker.join(5.0)


def test_a_shared_stopping_event_stops_several_workers() -> None:
    stop = threading.Event()
    workers = [Worker(lambda: stop.wait(60), name, stopping=stop) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    workers[0].signal()
    assert all(worker.join(5.0) for worker in workers)


def test_a_worker_never_started_counts_as_stopped() -> None:
    worker = Worker(lambda: None, "decart-sync-test-idle")
    assert worker.stop(0.0)
    assert not worker.is_alive()


def test_an_exception_is_logged_with_the_thread_name(caplog: pytest.LogCaptureFixture) -> None:
    def fail() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="decart_sync._threads"):
        worker = Worker(fail, "decart-sync-test-fails").start()
        assert worker.join(5.0)
    [record] = [r for r in caplog.records if r.name == "decart_sync._threads"]
    assert "decart-sync-test-fails" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
