"""What decart_sync changes in your process, beyond its own objects: all of it, here.

Each change is made by one installer below, called explicitly by the code
that needs it (never as a side effect of importing this module), and each is
idempotent: a second call changes nothing more.

=============================  ===========================================  ======================
installer                      called by                                    changes
=============================  ===========================================  ======================
load_opencv_before_av()        ``import decart_sync`` (``__init__``)        ``sys.meta_path``
allow_loopback_candidates()    a client of a loopback URL; the Emulator     ``aioice.ice``
settle_livekit_at_exit()       ``import decart_sync.realtime.transports.livekit``  ``atexit``
chain_sigint(callback)         every ``notebook.LiveView``                  the SIGINT handler
route_thread_output(user)      ``LiveView.on`` (``unroute_thread_output``)  ``sys.stdout/stderr``
=============================  ===========================================  ======================

Also here: ``hand_back_freed_memory()``, called after a connection's teardown,
hands the C heap's freed memory back to the system (glibc's ``malloc_trim``).

Not here, because each belongs to one object or to a program that owns its
process: ``RealtimeClient`` and ``Emulator`` register their own ``close`` with
``atexit`` (and unregister it when closed); the ``decart-sync`` CLI sets a
SIGINT handler for its run and restores it after; the emulator's CLI turns
SIGTERM into ``KeyboardInterrupt`` and configures logging.

Nothing heavy is imported here: ``import decart_sync`` must not load av.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

# -- OpenCV before PyAV ----------------------------------------------------------


class _LoadOpenCVFirst(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "av":
            _remove_opencv_hook()
            _load_opencv()
        return None  # the ordinary finders import av itself


_OPENCV_HOOK = _LoadOpenCVFirst()


def load_opencv_before_av() -> None:
    """Import cv2 (when installed) right before the first ``import av``, from anywhere.

    Changes: puts a one-shot finder first in ``sys.meta_path``; it removes
    itself at the first ``import av``. Nothing when av is loaded already (too
    late to matter) or the finder is in place.

    Why: PyAV's wheel bundles libxcb plus copies of libxcb-shape, -shm and
    -xfixes under the same file names as OpenCV's windowed wheel. Whichever
    loads first provides those to the process; when it is PyAV, OpenCV's Qt
    window mixes the two libxcb and the first ``cv2.imshow``/``waitKey`` spins
    at 100% CPU forever. Users import decart_sync and cv2 in any order and av
    loads lazily, so the hook makes the order right whatever they do
    (tests/test_opencv_gui.py checks both orders under Xvfb).

    Upstream: https://github.com/PyAV-Org/PyAV/issues/978 and
    https://github.com/opencv/opencv/issues/21952 (both about av before cv2).

    Versions: reported since PyAV 9 with opencv-python 4.x on Linux; here av
    18.1.0 (``av.libs`` holds libxcb, -shape, -shm, -xfixes) with the latest
    opencv-python. Harmless where there is no clash (no X, headless OpenCV).
    """
    if "av" not in sys.modules and _OPENCV_HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _OPENCV_HOOK)


def _remove_opencv_hook() -> None:
    if _OPENCV_HOOK in sys.meta_path:
        sys.meta_path.remove(_OPENCV_HOOK)


def _load_opencv() -> None:
    """Import cv2 if it is installed; a broken OpenCV must not break this library."""
    if "cv2" in sys.modules:
        return
    try:
        if importlib.util.find_spec("cv2") is None:
            return
        importlib.import_module("cv2")
    except Exception as exc:  # an OpenCV that cannot load (no libGL...) is the user's to see
        log.debug("cv2 is installed but did not import (%r); loading av anyway", exc)


# -- loopback ICE candidates -----------------------------------------------------

_loopback_lock = threading.Lock()
_loopback_installed = False


def allow_loopback_candidates() -> None:
    """Add 127.0.0.1 to the host addresses aioice gathers ICE candidates from.

    Changes: replaces ``aioice.ice.get_host_addresses`` with a wrapper that
    puts 127.0.0.1 first (when IPv4 is asked for and it is missing). Adding,
    not replacing, keeps every other candidate, so other aiortc peers in the
    process still reach the outside world.

    Why: aioice leaves 127.0.0.1 out (RFC 8445 5.1.1.1 forbids loopback host
    candidates), so two peers on one machine (the client and the emulator)
    would talk over the external address, or not at all on a machine with only
    ``lo``. Called when either end is on loopback, so that media stays on
    127.0.0.0/8 as the signaling does.

    Upstream: none found asking aioice for loopback candidates; the nearest,
    https://github.com/aiortc/aioice/issues/2, asks for a way to choose the
    local addresses (open), which would make this patch unnecessary.

    Versions: aioice 0.13.0 (with aiortc 1.16.0), whose ``Connection`` looks
    ``get_host_addresses(use_ipv4, use_ipv6)`` up in ``aioice.ice`` on each
    gathering; a release that renames or moves it would silently skip the patch.
    """
    global _loopback_installed
    with _loopback_lock:
        if _loopback_installed:
            return
        import aioice.ice  # here, not at the top: import decart_sync loads no media stack

        original = aioice.ice.get_host_addresses

        def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            addresses = original(use_ipv4, use_ipv6)
            if use_ipv4 and "127.0.0.1" not in addresses:
                addresses.insert(0, "127.0.0.1")
            return addresses

        aioice.ice.get_host_addresses = with_loopback
        _loopback_installed = True


# -- LiveKit at exit -------------------------------------------------------------

LIVEKIT_GRACE = 0.1  # seconds; only at exit, only if livekit's runtime was started
_livekit_settle_installed = False


def settle_livekit_at_exit() -> None:
    """At exit, after livekit disposes its runtime, let its native callbacks return.

    Changes: registers one ``atexit`` handler; call it before the first
    ``livekit.rtc`` object is made. atexit runs handlers last in, first out, so
    it runs after livekit's own dispose, and then, only if livekit's client was
    made in this process, releases the GIL for ``LIVEKIT_GRACE`` seconds.

    Why: after its dispose livekit starts no more calls into Python, but one
    under way waits for the GIL; its log forwarding makes hundreds a second
    while a room tears down (one the server ended goes on for about 50 ms after
    ``disconnect()`` returns). If finalization starts first, CPython ends the
    waiting thread with ``pthread_exit``, whose forced unwind through a Rust
    frame that must not unwind aborts the process ("panic in a function that
    cannot unwind", exit 134) after every test passed; seen under gdb as a
    ``tokio-rt-worker`` exiting while the main thread cleared module dicts.
    Those calls are invisible from Python, so there is nothing to wait on; a
    short grace is enough. Measured on a busy machine with a script exiting
    right after a server-ended room: 10 aborts in 60 runs without it, 0 in 30
    with a 50 ms grace; on a quiet one 0 in 75 either way. Not conclusive.

    Upstream: none found for the abort; the dispose we run after came with
    https://github.com/livekit/python-sdks/pull/274.

    Versions: livekit 1.2.1 (``livekit.rtc._ffi_client.FfiClient._instance``
    tells whether its runtime ran) on CPython 3.11.
    """
    global _livekit_settle_installed
    if not _livekit_settle_installed:
        _livekit_settle_installed = True
        atexit.register(_settle_livekit)


def _settle_livekit() -> None:
    ffi = sys.modules.get("livekit.rtc._ffi_client")
    client = getattr(getattr(ffi, "FfiClient", None), "_instance", None)
    if client is not None:  # its runtime ran in this process
        time.sleep(LIVEKIT_GRACE)  # releases the GIL to any callback still under way


# -- SIGINT ------------------------------------------------------------------------

_on_interrupt: list[Callable[[], None]] = []


def chain_sigint(callback: Callable[[], None]) -> None:
    """Call ``callback()`` on SIGINT, before the handler that was there.

    Changes: the SIGINT handler becomes ours, which calls every chained
    callback and then the handler it replaced (under ``SIG_DFL`` it restores
    that and sends SIGINT again). In an IPython kernel the kernel's saved
    handler is wrapped too, and a ``pre_execute`` hook wraps each cell's.
    Only the main thread can set handlers; elsewhere it only keeps the callback.
    A callback already chained, or a handler already ours, is left as it is.

    Why: a live view must stop when the kernel is interrupted. ipykernel
    ignores SIGINT between cells and, at the end of each message it handles,
    restores the handler it saved at the start, so a handler set with
    ``signal.signal`` inside a cell would be undone.

    Upstream: https://github.com/ipython/ipykernel/issues/328 ("ipykernel
    messes with signal handlers", open).

    Versions: ipykernel 7.4.0 (``Kernel.saved_sigint_handler``, set in
    ``pre_handler_hook`` and restored in ``post_handler_hook``), IPython 9.18.1.
    """
    if callback not in _on_interrupt:
        _on_interrupt.append(callback)
    if threading.current_thread() is not threading.main_thread():
        return
    ip = ipython_shell()
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


# -- what handler threads print ------------------------------------------------------

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


def route_thread_output(user: object) -> None:
    """Let threads inside `captured()` print to their own buffers, while ``user`` needs it.

    Changes: wraps ``sys.stdout`` and ``sys.stderr`` (once, whoever asks) in
    stand-ins that send a capturing thread's writes to its buffers and every
    other write where it went before. `unroute_thread_output()` for the
    last user puts the streams back, unless someone replaced them since.

    Why: what a live view's event handlers print must show in the view's own
    ``ipywidgets.Output``, not in whichever cell happens to run (or the one
    that started the thread) when the event fires.

    Upstream: ipykernel routes a thread's output to the cell that started the
    thread since https://github.com/ipython/ipykernel/pull/1186; an opt-out is
    asked for in https://github.com/ipython/ipykernel/issues/1289 (open).

    Versions: ipykernel 7.4.0; nothing here depends on its internals.
    """
    streams.acquire(user)


def unroute_thread_output(user: object) -> None:
    """Undo `route_thread_output()` for ``user``; idempotent."""
    streams.release(user)


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """What this thread prints meanwhile (through routed streams) lands in two buffers."""
    out, err = io.StringIO(), io.StringIO()
    _local.stdout, _local.stderr = out, err
    try:
        yield out, err
    finally:
        _local.stdout = _local.stderr = None


INSTALLERS: tuple[Callable[..., None], ...] = (
    load_opencv_before_av,
    allow_loopback_candidates,
    settle_livekit_at_exit,
    chain_sigint,
    route_thread_output,
)


def ipython_shell() -> Any:
    """The running IPython shell, or None; IPython is imported only when asked."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipywidgets brings IPython
        return None
    return get_ipython()


# -- Freed memory handed back -----------------------------------------------------
# glibc raises its mmap threshold after the first large free; frame-sized buffers
# then come from the heap, and what a torn-down connection's codecs freed in its
# middle is not handed back by itself (``benchmarks.soak`` grew 74 MB over 9
# reconnects). Pinning the threshold instead made every frame buffer page-fault
# (docs/benchmarks.md, Soak).

try:
    _malloc_trim: Callable[[int], int] | None = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError, TypeError):  # not glibc
    _malloc_trim = None


async def hand_back_freed_memory() -> None:
    """Return freed heap to the system after a teardown (glibc only), off the event loop."""
    if _malloc_trim is not None:
        await asyncio.to_thread(_malloc_trim, 0)
