"""What a live view needs from the IPython kernel: cells, display, SIGINT, stdout.

Kept apart from :mod:`.notebook` because it is about the kernel, not the view:
which cell is running, how to chain a SIGINT handler that survives ipykernel's
own handler juggling, and how to send what a handler thread prints to a buffer
of its own instead of to whichever cell happens to run.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

_on_interrupt: list[Callable[[], None]] = []


def shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipywidgets brings IPython
        return None
    return get_ipython()


def cell_id() -> str | None:
    """The running cell's id, when the front end sends one (JupyterLab, Notebook 7, VS Code)."""
    ip = shell()
    parent = ip.get_parent() if ip is not None and hasattr(ip, "get_parent") else None
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    cell = metadata.get("cellId") if isinstance(metadata, dict) else None
    return cell if isinstance(cell, str) else None


def display(widget: Any) -> None:
    if shell() is not None:
        from IPython.display import display

        display(widget)


# -- SIGINT ----------------------------------------------------------------------


def on_interrupt(callback: Callable[[], None]) -> None:
    """Call ``callback()`` on SIGINT, before the handler that was there.

    ipykernel ignores SIGINT between cells and, at the end of each message it
    handles, restores the handler it saved at the start: a handler set with
    ``signal.signal`` inside a cell would be undone. So the chain goes into the
    kernel's saved handler (in force between cells) and, through a
    ``pre_execute`` hook, around the handler of each running cell. Outside a
    kernel it wraps the process's handler. Only the main thread can do this;
    elsewhere it does nothing.
    """
    if callback not in _on_interrupt:
        _on_interrupt.append(callback)
    if threading.current_thread() is not threading.main_thread():
        return
    ip = shell()
    kernel = getattr(ip, "kernel", None)
    if kernel is not None and hasattr(kernel, "saved_sigint_handler"):
        if not _ours(kernel.saved_sigint_handler):
            kernel.saved_sigint_handler = _chained(kernel.saved_sigint_handler)
        if _chain_current not in ip.events.callbacks["pre_execute"]:
            ip.events.register("pre_execute", _chain_current)
    _chain_current()


def _chained(previous: Any) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        for callback in list(_on_interrupt):
            callback()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)

    handler.decart_sync_chained = True  # type: ignore[attr-defined]
    return handler


def _ours(handler: Any) -> bool:
    return getattr(handler, "decart_sync_chained", False)


def _chain_current(*_args: Any) -> None:
    current = signal.getsignal(signal.SIGINT)
    if not _ours(current):
        signal.signal(signal.SIGINT, _chained(current))


# -- what handler threads print ----------------------------------------------------

_local = threading.local()


class _Routed:
    """Stands in for sys.stdout/sys.stderr: a capturing thread's writes go to its buffer."""

    def __init__(self, stream: Any, name: str) -> None:
        self.wrapped = stream
        self._name = name

    def write(self, text: str) -> int:
        buffer = getattr(_local, self._name, None)
        return (buffer if buffer is not None else self.wrapped).write(text)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.wrapped, attribute)


class RoutedStreams:
    """Puts routed stand-ins in sys.stdout/stderr while some user needs them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: set[int] = set()

    def acquire(self, user: object) -> None:
        with self._lock:
            self._users.add(id(user))
            for name in ("stdout", "stderr"):
                if not isinstance(getattr(sys, name), _Routed):
                    setattr(sys, name, _Routed(getattr(sys, name), name))

    def release(self, user: object) -> None:
        with self._lock:
            if id(user) not in self._users:
                return
            self._users.discard(id(user))
            if self._users:
                return
            for name in ("stdout", "stderr"):
                stream = getattr(sys, name)
                if isinstance(stream, _Routed):  # left alone if someone replaced it since
                    setattr(sys, name, stream.wrapped)


streams = RoutedStreams()


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """What this thread prints meanwhile (through routed streams) lands in two buffers."""
    out, err = io.StringIO(), io.StringIO()
    _local.stdout, _local.stderr = out, err
    try:
        yield out, err
    finally:
        _local.stdout = _local.stderr = None
