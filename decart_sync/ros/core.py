"""The ROS-agnostic node: the session, the worker that reconciles it, diagnostics.

An adapter (``ros1.py``, ``rospy``; ``ros2.py``, ``rclpy``) feeds it images,
parameter changes, prompt messages and the number of ``image_out`` subscribers,
and gives it three callbacks: publish an output image, publish the state, log.
The core never blocks those feeders: every library call that waits (connect,
the acknowledged ``set_prompt``/``set_image``, close) runs on one worker thread,
``decart-sync-ros-worker``, which reconciles what is wanted (a session or not,
the latest prompt and image) with what is, each time something changes.
Output frames are read on ``decart-sync-ros-output`` and published from there.

Reconnects after a drop are the library's. The core itself only opens a
session when one is wanted and none is open: at start, when ``image_out``
gains a subscriber (``lazy``), after a failed first connect (every
``RETRY_INTERVAL`` s) and after the library gave up on a session. A permanent
error (bad key, unknown model, a bad image...) is not retried until a
parameter changes; the error itself says whether it is (``errors.is_permanent``),
the same rule the library's reconnects follow.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

import decart_sync
from decart_sync._portal import wait_until
from decart_sync._threads import Worker
from decart_sync.errors import is_permanent

from . import images
from .diagnostics import Facts, Rates, SessionTotals, assess
from .relay import OutputRelay
from .settings import Log, Settings, Status, backend, describe
from .wanted import Wanted, apply, connect_options, merge

NODE_NAME = "decart_sync"
RETRY_INTERVAL = 5.0
#: with ``lazy``, how long ``image_out`` must have had no subscriber before the session closes
LAZY_LINGER = 1.0
#: the worker's whole close (session close + thread joins); the node must be gone in 3 s
CLOSE_BUDGET = 2.5


class Core:
    """The node without ROS. Thread-safe; nothing here blocks its caller for long."""

    def __init__(
        self,
        settings: Settings,
        *,
        publish_image: Callable[[np.ndarray, Any], None],
        publish_state: Callable[[str], None],
        log: Log,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._publish_state = publish_state
        self._log = log
        self._env = os.environ if environ is None else environ
        self._lock = threading.Condition()
        self._wanted = Wanted(settings.prompt, settings.enhance, settings.image)
        self._applied_generation = 0
        self._apply_result: tuple[bool, str] = (True, "")
        self._client: decart_sync.RealtimeClient | None = None
        self._client_dead = False
        self._closing = False
        self._subscribers = 0
        self._no_subscribers_since: float | None = time.monotonic()
        self._retry_at = 0.0
        self._permanent: str | None = None  # the permanent error, until a parameter changes
        self._last_error: str | None = None
        self._state = "disconnected"
        self._warned_encodings: set[str] = set()
        # counters (the node's own; the library's come from client.stats)
        self.frames_in = 0  # images received on image_in
        self.frames_handed = 0  # handed over to the session
        self.dropped = 0  # wanted a session, but could not hand the frame over
        self.skipped_encoding = 0
        self._totals = SessionTotals()
        self._rates = Rates()
        self._embedded: Any = None
        self._api_key: str | None = None
        self._base_url: str | None = None
        self.backend = ""
        self._applied_image = settings.image
        self._worker = Worker(self._work, "decart-sync-ros-worker", wake=self._wake_to_close)
        self._relay = OutputRelay(publish_image, log)

    # -- what the adapters call ----------------------------------------------

    def start(self) -> None:
        self._api_key, self._base_url, self.backend, self._embedded = backend(
            self.settings, self._env, self._log
        )
        self._log.info(
            f"decart_sync ROS node: model {self.settings.model.name}, using {self.backend}"
            + (", lazy (connects while image_out has subscribers)" if self.settings.lazy else "")
        )
        self._set_state("disconnected")
        self._worker.start()

    def on_image(self, msg: Any) -> None:
        """An ``image_in`` message (any thread; never blocks)."""
        self.frames_in += 1
        try:
            frame = images.to_array(msg, self.settings.encoding)
        except images.UnsupportedEncoding as exc:
            self.skipped_encoding += 1
            if msg.encoding not in self._warned_encodings:
                self._warned_encodings.add(msg.encoding)
                self._log.error(f"image_in: {exc}; skipping such frames")
            return
        except ValueError as exc:
            self.skipped_encoding += 1
            self._log.warning(f"image_in: {exc}; frame skipped")
            return
        client = self._client
        if client is None or self._client_dead or not client.is_connected():
            if self._session_wanted():
                self.dropped += 1
            return
        try:
            captured = client.send_frame(frame)
        except decart_sync.DecartSDKError:
            self.dropped += 1
            return
        self._relay.input_sent(msg.header, captured)
        self.frames_handed += 1

    def on_params(self, params: Mapping[str, Any]) -> list[str]:
        """Changed parameters (any subset); returns complaints, empty if all were taken."""
        with self._lock:
            wanted, problems = merge(self._wanted, params, self.settings)
            if wanted is not None:
                self._wanted = wanted
                self._permanent = None  # a new prompt or image may fix it: try again
                self._retry_at = 0.0
                self._lock.notify_all()
        return problems

    def set_prompt(
        self, text: str, enhance: bool | None = None, *, wait: float | None = None
    ) -> tuple[bool, str]:
        """From the ``prompt`` topic or the service: the prompt to apply, acknowledged by the
        service on the worker thread. With ``wait``, waits that long for the outcome."""
        params: dict[str, Any] = {"prompt": text}
        if enhance is not None:
            params["enhance"] = enhance
        self.on_params(params)
        if not wait:
            return True, "queued"
        with self._lock:
            generation = self._wanted.generation

            def stored() -> bool:  # no session now, nor wanted: the next one starts with it
                return self._client is None and not self._session_wanted_locked()

            def settled() -> bool:
                applied = self._applied_generation >= generation
                return applied or self._closing or stored() or self._permanent is not None

            if not wait_until(settled, self._lock.wait, wait):
                return False, f"not acknowledged within {wait} s"
            if self._closing:
                return False, "the node is shutting down"
            if self._applied_generation >= generation:
                return self._apply_result
            if stored():
                return True, "stored; applied when the session starts"
            return False, str(self._permanent)

    def on_subscribers(self, count: int) -> None:
        """How many subscribers ``image_out`` has now (polled by the adapter)."""
        with self._lock:
            if count > 0:
                self._no_subscribers_since = None
            elif self._no_subscribers_since is None:
                self._no_subscribers_since = time.monotonic()
            if (count > 0) != (self._subscribers > 0):
                self._lock.notify_all()
            self._subscribers = count

    @property
    def state(self) -> str:
        return self._state

    def status(self) -> Status:
        """Diagnostics for now; fps are since the previous call."""
        stats = self._totals.read(self._client)
        fps_in, fps_out = self._rates.sample(self.frames_handed, self._relay.frames_out)
        rtt = stats.get("rtt_ms")
        facts = Facts(
            state=self._state,
            backend=self.backend,
            model=self.settings.model.name,
            prompt=self._wanted.prompt,
            fps_in=fps_in,
            fps_out=fps_out,
            frames_in=self.frames_in,
            frames_handed=self.frames_handed,
            frames_out=self._relay.frames_out,
            drops=self.dropped + self._totals.skipped,
            skipped_encoding=self.skipped_encoding,
            rtt_ms=None if rtt is None or rtt < 0 else float(rtt),
            reconnects=self._totals.reconnects + int(stats.get("reconnects", 0)),
            subscribers=self._subscribers,
            last_error=self._last_error,
            permanent=self._permanent,
            closing=self._closing,
            session_wanted=self._session_wanted(),
        )
        return assess(facts)

    def close(self, timeout: float = CLOSE_BUDGET) -> None:
        """Close the session and join the threads; bounded by ``timeout``."""
        if not self._worker.stop(timeout):
            self._log.warning(f"the session did not close within {timeout} s")

    def _wake_to_close(self) -> None:
        """The worker's wake: ``_closing`` is what it and the waits on the lock look at."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()

    # -- the worker ------------------------------------------------------------

    def _session_wanted(self) -> bool:
        with self._lock:
            return self._session_wanted_locked()

    def _session_wanted_locked(self) -> bool:
        if self._closing:
            return False
        if not self.settings.lazy:
            return True
        since = self._no_subscribers_since
        return since is None or (
            self._client is not None and time.monotonic() - since < LAZY_LINGER
        )

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closing:
                        break
                    action = self._next_action()
                    if action is None:
                        self._lock.wait(0.25)
                        continue
                action()
        except BaseException as exc:  # the worker must never die silently
            self._log.error(f"decart_sync ROS worker failed: {exc!r}")
        finally:
            self._disconnect(reason="shutting down")
            if self._embedded is not None:
                self._embedded.close(0.5)

    def _next_action(self) -> Callable[[], None] | None:
        """Under the lock: the one thing to do now, or None to wait."""
        client = self._client
        wanted = self._session_wanted_locked()
        if client is not None and (self._client_dead or not wanted):
            return lambda: self._disconnect(
                reason="image_out has no subscribers"
                if not self._client_dead
                else "the session ended"
            )
        if client is None:
            if wanted and self._permanent is None and time.monotonic() >= self._retry_at:
                return self._connect
            return None
        if self._applied_generation < self._wanted.generation:
            return self._apply
        return None

    def _connect(self) -> None:
        with self._lock:
            wanted = attrs.evolve(self._wanted)
        self._set_state("connecting")
        options = connect_options(self.settings, wanted, self._api_key, self._base_url)
        try:
            client = decart_sync.connect(None, **options)
        except (decart_sync.DecartSDKError, TypeError, ValueError, OSError) as exc:
            self._failed(exc, "could not connect")
            self._set_state("disconnected")
            return
        client.on("connection_change", lambda state: self._on_state(client, state))
        client.on("error", lambda error: self._on_error(client, error))
        with self._lock:
            if self._client is not None:  # never happens: only the worker connects
                self._client.close()
            self._client = client
            self._client_dead = False
            self._applied_generation = wanted.generation
            self._applied_image = wanted.image
            self._apply_result = (True, "applied at connect")
            self._last_error = None
            self._totals.started()
            self._lock.notify_all()
        self._relay.start(client)
        self._set_state(client.state)
        self._log.info(f"connected: session {client.session_id} ({self.backend})")

    def _apply(self) -> None:
        client = self._client
        with self._lock:
            wanted = attrs.evolve(self._wanted)
            previous_image = self._applied_image
        if client is None:
            return
        result = apply(client, wanted, previous_image, self._log)
        if result[0]:
            self._applied_image = wanted.image
        with self._lock:
            self._applied_generation = wanted.generation
            self._apply_result = result
            self._lock.notify_all()

    def _disconnect(self, reason: str) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return
        self._totals.ended(client)
        self._relay.stop()
        client.close()  # also ends a read under way
        self._relay.join(1.0)
        with self._lock:
            if self._client_dead and self._permanent is None:
                self._retry_at = time.monotonic() + RETRY_INTERVAL
            self._client_dead = False
        self._set_state("disconnected")
        self._log.info(f"session closed: {reason}")

    def _failed(self, exc: BaseException, what: str) -> None:
        text = describe(exc)
        with self._lock:
            self._last_error = text
            if is_permanent(exc):
                self._permanent = text
            else:
                self._retry_at = time.monotonic() + RETRY_INTERVAL
        if is_permanent(exc):
            self._log.error(
                f"{what}: permanent error {text}; not retrying until a parameter changes"
            )
        else:
            self._log.error(f"{what}: {text}; retrying in {RETRY_INTERVAL:.0f} s")

    # -- library events (on the client's events thread) --------------------------

    def _on_state(self, client: decart_sync.RealtimeClient, state: str) -> None:
        with self._lock:
            if client is not self._client:
                return  # a late event of a session already closed
            if state == "disconnected":
                self._client_dead = True
                self._lock.notify_all()
        self._set_state(state)

    def _on_error(self, client: decart_sync.RealtimeClient, error: Any) -> None:
        text = describe(error)
        with self._lock:
            if client is not self._client:
                return
            self._last_error = text
            if is_permanent(error):
                self._permanent = text
        self._log.error(("permanent error " if is_permanent(error) else "session error ") + text)

    def _set_state(self, state: str) -> None:
        with self._lock:
            if state == self._state:
                return
            self._state = state
        self._publish_state(state)
