"""A live view for Jupyter: the restyled video, a prompt box and a stop button.

>>> from decart_sync.notebook.view import live_view
>>> view = live_view(camera, model=models.realtime.mirage(), prompt="sepia")

This module sits above the client and uses only its public API. A
``decart-sync-notebook-frames`` thread pulls output frames, at most
``max_fps`` a second (newer frames replace ones it had no time for), encodes
each shown frame to JPEG with av and hands it to an ``ipywidgets.Image``. Work
that waits on the service (a prompt typed in the box, the stop button) runs on
the view's ``decart-sync-notebook-worker`` thread, never in a widget callback,
so the kernel stays responsive.

A view stops (its session closed, its threads joined) on
[`LiveView.stop()`][decart_sync.notebook.view.LiveView.stop],
on the stop button, when the kernel is interrupted (a SIGINT handler, chained
to the one before it, stops every view), and when the cell that made it runs
again: a new view stops the earlier ones made by the same cell, or, when the
front end does not say which cell runs (nbclient, the classic notebook), all
earlier views. The view's messages and the output of handlers registered with
[`LiveView.on()`][decart_sync.notebook.view.LiveView.on] go to the view's own
``ipywidgets.Output``, not to
whichever cell happens to run when they fire.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _process
from .._portal import Deadline, wait_until
from .._threads import Worker
from ..client.start import RealtimeClient, connect
from ..errors import DecartSDKError, InvalidOptionsError, TimeoutError_, WebSocketError
from ..options import forwarded, with_prompt
from . import kernel
from .jpeg import Jpeg

try:
    import ipywidgets as widgets
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "decart_sync.notebook.view needs ipywidgets: pip install 'decart-sync[notebook]'"
    ) from exc

__all__ = ["LiveView", "RateCap", "live_view"]

MAX_OUTPUTS = 200  # lines kept in the view's Output, so a long session does not grow it forever


def live_view(
    source: Any = None,
    *,
    model: Any,
    prompt: str | None = None,
    enhance: bool = True,
    max_fps: float = 12.0,
    display: bool = True,
    **connect_options: Any,
) -> LiveView:
    """Connect (``decart_sync.connect(source, model=..., **connect_options)``) and show it.

    ``prompt`` is the initial prompt (ignored when ``initial_state`` is given).
    The view is displayed in the calling cell unless ``display=False``; show it
    again with ``display(view.widget)``. Earlier views of the same cell are
    stopped first.
    """
    RateCap(max_fps)  # a bad max_fps or keyword fails before anything connects or stops
    forwarded(connect_options, "live_view", own=("prompt", "enhance", "max_fps", "display"))
    _stop_earlier(kernel.cell_id())
    connect_options = with_prompt(connect_options, prompt, enhance=enhance, both="initial_state")
    client = connect(source, model=model, **connect_options)
    try:
        view = LiveView(client, prompt=prompt, max_fps=max_fps)
    except BaseException:
        client.close()
        raise
    if display:
        kernel.display(view.widget)
    return view


class RateCap:
    """At most ``per_second`` shows: how long to wait before the next one may go.

    After a stall the next show may go at once, but no burst follows.
    """

    def __init__(self, per_second: float) -> None:
        if not per_second > 0:
            raise InvalidOptionsError(f"max_fps must be a positive number, got {per_second!r}")
        self.period = 1.0 / per_second
        self._next = float("-inf")

    def delay(self, now: float) -> float:
        return max(0.0, self._next - now)

    def shown(self, now: float) -> None:
        self._next = max(self._next, now) + self.period


class LiveView:
    """One session shown in a notebook. Made by [`live_view()`][decart_sync.notebook.live_view]."""

    def __init__(self, client: RealtimeClient, *, prompt: str | None, max_fps: float) -> None:
        self.client = client
        self.frames_shown = 0
        self.last_frame: np.ndarray | None = None  # the frame most recently shown
        self.prompt = prompt
        self._cap = RateCap(max_fps)
        self._jpeg = Jpeg(client.pixel_format)
        self._frames = client.frames()
        self._shown = threading.Condition()
        self._out_lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._error: DecartSDKError | None = None
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._handlers: dict[tuple[str, Callable[[Any], Any]], Callable[[Any], None]] = {}
        self._cell = kernel.cell_id()

        self.image = widgets.Image(
            format="jpeg", layout=widgets.Layout(width=f"{client.model.width}px")
        )
        self.prompt_box = widgets.Text(
            value=prompt or "",
            description="Prompt",
            continuous_update=False,
            placeholder="type a prompt, then Enter",
        )
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger")
        self.status = widgets.Label(value=self._status_text())
        self.output = widgets.Output()
        self.widget = widgets.VBox(
            [
                self.image,
                widgets.HBox([self.prompt_box, self.stop_button]),
                self.status,
                self.output,
            ]
        )
        self.prompt_box.observe(self._prompt_typed, names="value")
        self.stop_button.on_click(lambda _button: self.stop(wait=False))
        client.on("connection_change", self._state_changed)
        client.on("error", self._error_event)

        self._worker = Worker(
            self._work, "decart-sync-notebook-worker", wake=lambda: self._jobs.put(None)
        )
        self._puller = Worker(self._pull, "decart-sync-notebook-frames", stopping=self._stopping)
        with _views_lock:
            _views.add(self)
        _process.chain_sigint(_interrupted)
        self._worker.start()
        self._puller.start()

    # -- what a notebook calls -------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def frames_skipped(self) -> int:
        """Output frames the view had no time to show (the rate cap, a slow kernel)."""
        return self._frames.dropped

    def set_prompt(self, text: str, *, enhance: bool = True, timeout: float = 15.0) -> None:
        """Change the prompt and wait for the service's ack; the box follows."""
        self._apply_prompt(text, enhance, timeout, raise_errors=True)

    def wait_for_frames(self, count: int = 1, timeout: float = 10.0) -> np.ndarray:
        """Wait until ``count`` more frames were shown; returns the last one shown."""
        with self._shown:
            target = self.frames_shown + count
        return self._wait(lambda: self.frames_shown >= target, timeout, f"{count} new frame(s)")

    def wait_for(
        self, predicate: Callable[[np.ndarray], bool], timeout: float = 10.0
    ) -> np.ndarray:
        """Wait for a newly shown frame for which ``predicate(frame)`` holds; returns it."""
        with self._shown:
            checked = self.frames_shown

        def holds() -> bool:
            nonlocal checked
            if self.frames_shown == checked or self.last_frame is None:
                return False
            checked = self.frames_shown
            return bool(predicate(self.last_frame))

        return self._wait(holds, timeout, "a matching frame")

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> np.ndarray:
        met = False

        def settled() -> bool:  # condition() may have side effects: called once a look
            nonlocal met
            met = condition()
            return met or self._stopping.is_set() or not self._puller.is_alive()

        with self._shown:
            if not wait_until(settled, self._shown.wait, timeout):
                raise TimeoutError_(f"{what} not shown within {timeout} s")
            if not met:
                raise self._error or WebSocketError("the live view was stopped")
            assert self.last_frame is not None
            return self.last_frame

    def on(self, event: str, handler: Callable[[Any], Any]) -> None:
        """Like ``client.on``, but what the handler prints (or raises) shows in this view."""

        def wrapped(value: Any) -> None:
            with _process.captured() as (out, err):
                try:
                    handler(value)
                except Exception:
                    err.write(traceback.format_exc())
            self._append("stdout", out.getvalue())
            self._append("stderr", err.getvalue())

        _process.route_thread_output(self)
        self.client.on(event, wrapped)  # an unknown event raises here, before it is kept
        self._handlers[(event, handler)] = wrapped

    def off(self, event: str, handler: Callable[[Any], Any]) -> None:
        wrapped = self._handlers.pop((event, handler), None)
        if wrapped is not None:
            self.client.off(event, wrapped)

    def stop(self, timeout: float = 5.0, *, wait: bool = True) -> None:
        """Close the session and join the view's threads; idempotent.

        ``wait=False`` does it on a short-lived thread and returns at once (the
        stop button and the SIGINT handler do that, so the kernel never waits).
        """
        if not wait:
            if not self._stopping.is_set():
                threading.Thread(
                    target=self.stop, args=(timeout,), name="decart-sync-notebook-stop"
                ).start()
            return
        with self._stop_lock:
            first = not self._stopping.is_set()
            self._stopping.set()
        if not first:
            self._stopped.wait(timeout)
            return
        deadline = Deadline(timeout)
        with _views_lock:
            _views.discard(self)
        self.client.close()  # ends the frames iterator and any prompt waiting for its ack
        for worker in (self._puller, self._worker):
            worker.signal()
        for worker in (self._puller, self._worker):
            worker.join(deadline.remaining())
        _process.unroute_thread_output(self)
        self.prompt_box.disabled = self.stop_button.disabled = True
        self._set_status()
        with self._shown:
            self._shown.notify_all()
        self._stopped.set()

    def __repr__(self) -> str:
        return (
            f"<LiveView model={self.client.model.name!r} state={self.client.state!r} "
            f"frames_shown={self.frames_shown}{' stopped' if self.stopped else ''}>"
        )

    # -- threads ---------------------------------------------------------------

    def _pull(self) -> None:
        frames = self._frames
        try:
            while not self._stopping.wait(self._cap.delay(time.monotonic())):
                frame = next(frames, None)  # the newest frame; older ones are skipped
                if frame is None:
                    return
                self._cap.shown(time.monotonic())
                self.image.value = self._jpeg.encode(frame)
                with self._shown:
                    self.last_frame = frame
                    self.frames_shown += 1
                    self._shown.notify_all()
        except DecartSDKError as exc:
            self._error = exc
            self._append("stderr", f"the session ended: {exc}\n")
        except Exception:
            self._append("stderr", f"the live view failed:\n{traceback.format_exc()}")
        finally:
            with self._shown:
                self._shown.notify_all()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                self._append("stderr", traceback.format_exc())

    # -- callbacks (widgets on the kernel's thread, events on the client's) ----

    def _prompt_typed(self, change: dict[str, Any]) -> None:
        text = change["new"]
        if text and text != self.prompt and not self._stopping.is_set():
            self._jobs.put(lambda: self._apply_prompt(text, True, 15.0, raise_errors=False))

    def _apply_prompt(
        self, text: str, enhance: bool, timeout: float, *, raise_errors: bool
    ) -> None:
        started = time.monotonic()
        try:
            self.client.set_prompt(text, enhance=enhance, timeout=timeout)
        except DecartSDKError as exc:
            self._append("stderr", f"prompt {text!r} failed: {exc}\n")
            if raise_errors:
                raise
            return
        self.prompt = text
        self.prompt_box.value = text  # unchanged or equal to self.prompt: no second request
        self._append(
            "stdout", f"prompt {text!r} acknowledged in {time.monotonic() - started:.2f} s\n"
        )
        self._set_status()

    def _state_changed(self, state: str) -> None:
        self._append("stdout", f"state: {state}\n")
        self._set_status()

    def _error_event(self, error: DecartSDKError) -> None:
        self._append("stderr", f"error: {error}\n")

    def _append(self, name: str, text: str) -> None:
        if text:
            entry = {"output_type": "stream", "name": name, "text": text}
            with self._out_lock:
                self.output.outputs = (*self.output.outputs[-(MAX_OUTPUTS - 1) :], entry)

    def _status_text(self) -> str:
        state = "stopped" if self._stopping.is_set() else self.client.state
        return f"{self.client.model.name}: {state}, prompt {self.prompt!r}"

    def _set_status(self) -> None:
        self.status.value = self._status_text()


# -- the views of this process -------------------------------------------------

_views: set[LiveView] = set()  # running views; a view's own threads keep it alive too
_views_lock = threading.Lock()


def _running() -> list[LiveView]:
    with _views_lock:
        return list(_views)


def _stop_earlier(cell: str | None) -> None:
    for view in _running():
        if cell is None or view._cell is None or view._cell == cell:
            view.stop()


def _interrupted() -> None:
    """Called inside the SIGINT handler: takes no lock of ours, hands the work to a thread."""
    if _views:
        threading.Thread(target=_stop_all, name="decart-sync-notebook-stop").start()


def _stop_all() -> None:
    for view in _running():
        view.stop(wait=False)  # in parallel: each close may take its full bound
