"""The loop-thread bridge: one asyncio loop on a named thread, blocking calls into it.

Everything asynchronous in this package runs on a `Portal`'s loop; user
threads only ever wait on ``concurrent.futures.Future`` objects, in short
slices so that Ctrl-C lands, and with a deadline. A call that times out or is
interrupted cancels its coroutine on the loop: work never goes on after the
caller gave up. Calling a blocking method from the loop thread itself would
deadlock, so it is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# Waits are sliced so KeyboardInterrupt reaches the main thread promptly.
_SLICE = 0.1


class Deadline:
    """One overall timeout shared by the steps of a multi-step operation.

    It can be paused: time spent waiting in the service's queue is not
    connect time. Pausing and reading may happen on different
    threads; each reads or replaces one tuple, which the GIL keeps whole.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        # (end, paused_remaining): the end while running; what was left while paused.
        self._state: tuple[float | None, float | None] = (
            None if timeout is None else time.monotonic() + timeout,
            None,
        )

    def remaining(self) -> float | None:
        end, left = self._state
        if left is not None:
            return left
        if end is None:
            return None
        return max(0.0, end - time.monotonic())

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    @property
    def paused(self) -> bool:
        return self._state[1] is not None

    def pause(self) -> None:
        """Stop the clock (a no-op without a timeout or when paused)."""
        end, left = self._state
        if end is not None and left is None:
            self._state = (end, max(0.0, end - time.monotonic()))

    def resume(self) -> None:
        """Start the clock again with what was left when it was paused."""
        _, left = self._state
        if left is not None:
            self._state = (time.monotonic() + left, None)

    def slices(self) -> Iterator[float]:
        """Wait steps of at most 0.1 s until the deadline (for ever without one).

        A thread blocked in one short step at a time still sees Ctrl-C at once,
        and a wait that missed its wake-up looks again soon.
        """
        while True:
            remaining = self.remaining()
            if remaining is not None and remaining <= 0:
                return
            yield _SLICE if remaining is None else min(_SLICE, remaining)


def wait_until(
    predicate: Callable[[], bool],
    wait: Callable[[float], object],
    timeout: float | Deadline | None,
) -> bool:
    """Until ``predicate()`` holds; False at the deadline (a `Deadline` may pause).

    ``wait(seconds)`` blocks until something may have changed: ``event.wait``,
    or ``cond.wait`` with the condition's lock held by the caller.
    """
    deadline = timeout if isinstance(timeout, Deadline) else Deadline(timeout)
    for step in deadline.slices():
        if predicate():
            return True
        wait(step)
    return predicate()


def wait_future(fut: concurrent.futures.Future[T], timeout: float | Deadline | None) -> T:
    """``fut.result(timeout)`` that stays interruptible and cancels on the way out.

    Raises the builtin ``TimeoutError`` at the deadline; callers translate it.
    """
    try:
        if wait_until(fut.done, _quiet(fut.exception), timeout):
            return fut.result()
    except BaseException:
        fut.cancel()
        raise
    fut.cancel()
    seconds = timeout.timeout if isinstance(timeout, Deadline) else timeout
    raise TimeoutError(f"no result within {seconds} s")


def _quiet(wait: Callable[[float], object]) -> Callable[[float], None]:
    """A Future's timed wait without its TimeoutError: only the deadline decides."""

    def waiting(seconds: float) -> None:
        with contextlib.suppress(concurrent.futures.TimeoutError):
            wait(seconds)

    return waiting


class Expired(Exception):
    """A `Deadline` ran out. Not a ``TimeoutError``: the awaited work may raise
    one of those (a coded ``TimeoutError_`` among them) for reasons of its own."""


async def within(aw: Awaitable[T], deadline: Deadline) -> T:
    """``asyncio.wait_for`` against a `Deadline` that may pause: raises
    `Expired` only once the deadline has really run out."""
    task = asyncio.ensure_future(aw)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=deadline.remaining())
            if done:
                return task.result()
            if deadline.expired():
                raise Expired
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class Portal:
    """An event loop running on its own thread until `stop()`."""

    def __init__(self, name: str = "decart-sync-loop") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Portal:
        with self._lock:
            if self._thread is not None:
                return self
            started: concurrent.futures.Future[asyncio.AbstractEventLoop] = (
                concurrent.futures.Future()
            )
            self._thread = threading.Thread(
                target=self._run, args=(started,), name=self.name, daemon=True
            )
            self._thread.start()
            self._loop = started.result()
        return self

    def _run(self, started: concurrent.futures.Future[asyncio.AbstractEventLoop]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set_result, loop)
        try:
            loop.run_forever()
        finally:
            try:
                _cancel_all(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel what is left on the loop, stop it and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = None
            self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("Portal.stop() cannot be called from its own loop thread")
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the portal is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None

    def in_loop_thread(self) -> bool:
        return self._thread is threading.current_thread()

    # -- calls -------------------------------------------------------------

    def submit(
        self, func: Callable[..., Awaitable[T]], *args: Any
    ) -> concurrent.futures.Future[T]:
        """Run ``func(*args)`` on the loop; cancelling the returned Future cancels it.

        The coroutine is made on the loop, as anyio's portal does: a call refused
        or cancelled before it starts leaves no coroutine behind to be closed.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(_start, func, args, future)
        return future

    def call(
        self,
        func: Callable[..., Awaitable[T]],
        *args: Any,
        timeout: float | Deadline | None = None,
    ) -> T:
        """Run ``func(*args)`` on the loop and wait for it, at most ``timeout`` seconds."""
        if self.in_loop_thread():
            raise RuntimeError(
                "a blocking decart_sync call was made from its own event-loop thread; "
                "this would deadlock"
            )
        return wait_future(self.submit(func, *args), timeout)

    def __enter__(self) -> Portal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start(
    func: Callable[..., Awaitable[T]], args: tuple[Any, ...], future: concurrent.futures.Future[T]
) -> None:
    """On the loop: start ``func(*args)`` unless the caller gave up already, and tie the
    task and ``future`` together both ways (as asyncio.run_coroutine_threadsafe does)."""
    if future.cancelled():
        return
    loop = asyncio.get_running_loop()
    try:
        task = asyncio.ensure_future(func(*args))
    except BaseException as exc:
        if future.set_running_or_notify_cancel():
            future.set_exception(exc)
        return

    def caller_gave_up(done: concurrent.futures.Future[T]) -> None:
        if done.cancelled():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
                loop.call_soon_threadsafe(task.cancel)

    def finished(done: asyncio.Future[T]) -> None:
        if done.cancelled():
            future.cancel()
            return
        if not future.set_running_or_notify_cancel():
            return
        error = done.exception()
        if error is None:
            future.set_result(done.result())
        else:
            future.set_exception(error)

    future.add_done_callback(caller_gave_up)
    task.add_done_callback(finished)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
