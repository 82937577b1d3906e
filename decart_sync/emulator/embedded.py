"""The emulator in this process: its own loop thread, blocking methods for tests and scripts."""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from .. import _process
from .._portal import Portal, wait_until
from ..models import ModelDefinition
from . import http_routes
from .accounts import FileStore, TokenStore
from .batch import Batch
from .faults import Faults
from .rest import RestServer
from .server import EmulatorServer
from .session import ServedSession, Subscriber
from .signing import JWKS_PATH

THREAD_NAME = "decart-sync-emulator"
START_TIMEOUT = 10.0


class Emulator:
    """A local stand-in for Decart's realtime service, on ``ws://host:port``.

    ``api_keys``: None accepts any non-empty key, else only these keys.
    ``models``: extra models served besides
    [`decart_sync.models.REGISTRY`][decart_sync.models.REGISTRY]
    (``{name: ModelDefinition}`` or an iterable of definitions).
    ``faults``: misbehaviours to inject ([`Faults`][decart_sync.emulator.Faults]); changeable
    later through `faults`. The REST API (files, client tokens, image and video
    models: `batch`) is served on ``rest_port`` (default: any free one), at
    [`rest_url`][decart_sync.emulator.Emulator.rest_url]:
    ``DecartClient(api_key=..., base_url=emu.rest_url, realtime_base_url=emu.url)``.
    LiveKit clients get LiveKit's single-peer-connection signaling (``/rtc/v1``,
    what they try first); ``livekit_v1=False`` serves only the classic path
    (``/rtc``, two peer connections), as a LiveKit server before v1 did, and they
    fall back to it.

    A context manager; [`close()`][decart_sync.emulator.Emulator.close] is idempotent,
    bounded, and joins the
    emulator's thread (``decart-sync-emulator``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Collection[str] | str | None = None,
        models: Mapping[str, ModelDefinition] | Iterable[ModelDefinition] | None = None,
        *,
        faults: Faults | None = None,
        rest_port: int = 0,
        livekit_v1: bool = True,
    ) -> None:
        self._changed = threading.Condition()
        self._server = EmulatorServer(
            host,
            port,
            api_keys=api_keys,
            models=models,
            faults=faults,
            on_change=self._notify,
            livekit_v1=livekit_v1,
        )
        self._rest_port = rest_port
        self._rest: RestServer | None = None
        self._batch = Batch(lambda: self._server.faults)
        self._portal = Portal(THREAD_NAME)
        self._lock = threading.Lock()
        self._state = "new"  # new -> running -> closed
        self._handed_out: weakref.WeakSet[ServedSession] = weakref.WeakSet()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> Emulator:
        with self._lock:
            if self._state == "running":
                return self
            if self._state == "closed":
                raise RuntimeError("a closed Emulator cannot be restarted; make a new one")
            _process.allow_loopback_candidates()  # before any peer: aioice omits 127.0.0.1
            self._portal.start()
            try:
                self._portal.call(self._server.start, timeout=START_TIMEOUT)
                server = self._server
                self._rest = RestServer(
                    server.host,
                    self._rest_port,
                    files=server.files,
                    tokens=server.tokens,
                    batch=self._batch,
                    account_key_ok=server.key_ok,
                    watch=self._viewer_credentials,
                ).start()
            except BaseException:
                with contextlib.suppress(Exception):
                    self._portal.call(self._server.close, timeout=START_TIMEOUT)
                self._portal.stop()
                self._state = "closed"
                raise
            self._state = "running"
            atexit.register(self.close)
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Close every session and socket, stop the loop, join its thread."""
        with self._lock:
            if self._state != "running":
                self._state = "closed"
                return
            self._state = "closed"
        atexit.unregister(self.close)
        start = time.monotonic()
        if self._rest is not None:
            self._rest.close(timeout / 2)
        with contextlib.suppress(Exception):
            self._portal.call(self._server.close, timeout=timeout)
        self._portal.stop(max(0.5, timeout - (time.monotonic() - start)))
        self._notify()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses ------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        host = self.host
        if ":" in host:
            host = f"[{host}]"  # IPv6 literal
        return f"ws://{host}:{self.port}"

    @property
    def stun_url(self) -> str:
        """A STUN server on the emulator's host (``stun:127.0.0.1:PORT``), for
        ``check_connectivity(ice_servers=[emu.stun_url])``."""
        return self._server.stun.url

    @property
    def rest_url(self) -> str:
        """The REST API's ``http://host:port`` (``DecartClient``'s ``base_url``)."""
        if self._rest is None:
            raise RuntimeError("the emulator has not been started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._rest.port}"

    @property
    def jwks_url(self) -> str:
        """Where the public key of the emulator's client tokens is served, for
        ``tokens.verify(token, jwks_url=emu.jwks_url)``."""
        return f"{self.rest_url}{JWKS_PATH}"

    @property
    def batch(self) -> Batch:
        """The image and video models: ``emu.batch.jobs`` lists the jobs, oldest first."""
        return self._batch

    @property
    def livekit_v1(self) -> bool:
        """Whether LiveKit's ``/rtc/v1`` (one peer connection) is served."""
        rooms = self._server.livekit_rooms
        return rooms is not None and rooms.single_pc

    @property
    def files(self) -> FileStore:
        """Uploaded files (``emu.files.get(id)``, ``len(emu.files)``)."""
        return self._server.files

    @property
    def tokens(self) -> TokenStore:
        """Client tokens issued (``emu.tokens.get(api_key)``)."""
        return self._server.tokens

    # -- sessions -------------------------------------------------------------

    @property
    def sessions(self) -> list[ServedSession]:
        """Live stream sessions, oldest first (a snapshot)."""
        return self._server.sessions

    @property
    def subscribers(self) -> list[Subscriber]:
        """Live subscribers (a snapshot)."""
        return self._server.subscribers

    @property
    def history(self) -> list[ServedSession]:
        """Every stream session so far, ended ones included (a snapshot)."""
        return list(self._server.history)

    @property
    def refused(self) -> int:
        """Connections turned away so far: bad key, unknown model, a token's limits, busy."""
        return self._server.refused

    @property
    def faults(self) -> Faults:
        return self._server.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._server.set_faults(faults)

    def session(self, session_id: str) -> ServedSession | None:
        return next((s for s in self.sessions if s.session_id == session_id), None)

    def wait_for_session(
        self,
        timeout: float = 10.0,
        *,
        session_id: str | None = None,
        predicate: Callable[[ServedSession], bool] | None = None,
    ) -> ServedSession:
        """A live session: the one with ``session_id``, else the oldest not yet returned.

        ``predicate`` narrows the choice. Raises ``TimeoutError`` at the deadline.
        """
        found: list[ServedSession] = []

        def match() -> bool:
            for session in self.sessions:
                if session_id is not None and session.session_id != session_id:
                    continue
                if session_id is None and session in self._handed_out:
                    continue
                if predicate is not None and not predicate(session):
                    continue
                found.append(session)
                return True
            return False

        # Sliced: a predicate on a session's own state changes without a notify here.
        if not wait_until(match, self._wait_changed, timeout):
            raise TimeoutError(f"no matching emulator session within {timeout} s")
        self._handed_out.add(found[0])
        return found[0]

    def _wait_changed(self, seconds: float) -> None:
        with self._changed:
            self._changed.wait(seconds)

    def drop_sessions(self, how: str = "both", timeout: float = 5.0) -> int:
        """Simulate a service drop of every live session; returns how many.

        ``how``: "signaling" aborts the WebSockets (media goes on until the
        client gives up its peer), "peer" closes the peer connections (the
        WebSockets stay open), "both" does both and ends the sessions.
        """
        return self._portal.call(self._server.drop, how, timeout=timeout)

    def send(
        self, message: dict[str, Any] | str, *, session_id: str | None = None, timeout: float = 5.0
    ) -> int:
        """Send a message to live sessions (or one): a dict as JSON, text verbatim.

        How a test plays a failing or hostile service, e.g.
        ``emu.send({"type": "error", "error": "Insufficient credits"})``. Returns
        how many sessions it reached.
        """
        return self._portal.call(self._server.send, message, session_id, timeout=timeout)

    def _viewer_credentials(self, room: str) -> tuple[int, dict[str, str] | str]:
        """For the REST port's ``/watch-stream/{room}`` (its threads), from the loop."""

        async def credentials() -> tuple[int, dict[str, str] | str]:
            return http_routes.viewer_credentials(self._server, room, self.url)

        return self._portal.call(credentials, timeout=START_TIMEOUT)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def __repr__(self) -> str:
        where = self.url if self._state == "running" else self._state
        return f"<Emulator {where}>"
