"""The emulator's WebSocket server: routing, API keys, the registry of sessions.

Routes (one port):

- plain HTTP (``/_emulator/...`` admin commands, ``POST /watch-stream/{room}``):
  `http_routes`; LiveKit's signaling (``/rtc/v1``, ``/rtc``): `livekit`.
- ``/subscribe/{sid}?api_key=..`` (WebSocket): a viewer of session ``sid``.
- the REST API (files, client tokens) has a port of its own: see `rest`.
  A client token's key (``ek_...``) is checked here: expiry, allowed models and
  origins (the ``Origin`` header, verbatim), and its session's duration.
- any other path (WebSocket): the stream endpoint; the model is the one named
  in the ``model`` query parameter. The path is not checked against the
  model's ``url_path``: custom models may use any path.

Pure asyncio; [`Emulator`][decart_sync.emulator.Emulator] runs it on its own loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from ..models import CLASSIC_GENERATION, REGISTRY, ModelDefinition
from ..realtime.transports.loopback import is_loopback_host
from . import http_routes
from .accounts import FileStore, TokenStore, is_token_key
from .connection import DROP_MODES, Connection
from .faults import Faults
from .session import ServedSession, Subscriber
from .stun import StunServer

if TYPE_CHECKING:  # needs the optional livekit-protocol package
    from .livekit import LiveKitRooms

log = logging.getLogger(__name__)


class _RedactKeys(logging.Filter):
    """websockets logs request lines at DEBUG; the key is in their query string."""

    _KEY = re.compile(r"(api_key=|x-api-key: )[^&\s]*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message or "x-api-key" in message.lower():
            record.msg, record.args = self._KEY.sub(r"\1***", message), None
        return True


_websockets_log = logging.getLogger(f"{__name__}.websockets")
_websockets_log.addFilter(_RedactKeys())

WORKER_PREFIX = "decart-sync-emulator-worker"
SUBSCRIBE_PREFIX = "/subscribe/"
# Reference images travel as base64 in one message.
MAX_MESSAGE = 64 * 1024 * 1024
# Bounds on shutdown: a WebSocket closing handshake, every session's own close.
CLOSE_TIMEOUT = 0.5
SESSIONS_CLOSE_TIMEOUT = 1.5
BUSY = "The service is at capacity; try again shortly"  # Faults.refuse_connects

Models = Mapping[str, ModelDefinition] | Iterable[ModelDefinition] | None


class EmulatorServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: Collection[str] | str | None = None,
        models: Models = None,
        faults: Faults | None = None,
        on_change: Callable[[], None] = lambda: None,
        livekit_rooms: LiveKitRooms | None = None,
        livekit_v1: bool = True,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.api_keys = _keys(api_keys)
        self._extra_models = _models(models)
        self.models: dict[str, ModelDefinition] = {**REGISTRY, **self._extra_models}
        self.faults = faults if faults is not None else Faults()
        self.loopback = is_loopback_host(host)
        self._on_change = on_change
        # LiveKit signaling (/rtc/v1 unless livekit_v1 is False, /rtc) on this same port:
        # see .livekit.
        if livekit_rooms is None:
            livekit_rooms = _livekit(self.loopback, livekit_v1)
        self.livekit_rooms = livekit_rooms
        self._server: Server | None = None
        self._port: int | None = None
        # Read from other threads (snapshots), written on the loop.
        self._lock = threading.Lock()
        self._sessions: dict[str, ServedSession] = {}
        self._subscribers: list[Subscriber] = []
        self.history: list[ServedSession] = []
        self.stun = StunServer(self.host)  # for connectivity checks (.stun)
        self.refused = 0  # connections turned away (bad key, model, token; busy), for tests
        # What the REST API (.rest, on its own port) keeps; sessions read them.
        self.files = FileStore()
        self.tokens = TokenStore()

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        # Frame work (ours and aiortc's encoders) runs in the loop's default executor:
        # named threads let thread dumps and leak checks tell whose they are.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(thread_name_prefix=WORKER_PREFIX)
        )
        self._server = await serve(
            self._handle,
            self.host,
            self.requested_port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE,
            close_timeout=CLOSE_TIMEOUT,
            logger=_websockets_log,
        )
        # Kept: the address still names the emulator in messages after it closed.
        self._port = int(self._server.sockets[0].getsockname()[1])
        await self.stun.start()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    async def close(self) -> None:
        """Close every session, then the server; bounded even with stuck peers."""
        server = self._server
        if server is None:
            return
        self.stun.close()
        server.server.close()  # stop accepting
        closing = [c.close("the emulator closed") for c in self._all()]
        if self.livekit_rooms is not None:
            closing.append(self.livekit_rooms.close())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*closing), SESSIONS_CLOSE_TIMEOUT)
        server.close()  # whatever is left: sockets mid-handshake, rejected clients
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT)

    # -- registry (thread-safe snapshots) -------------------------------------

    @property
    def sessions(self) -> list[ServedSession]:
        with self._lock:
            return list(self._sessions.values())

    @property
    def subscribers(self) -> list[Subscriber]:
        with self._lock:
            return list(self._subscribers)

    def _all(self) -> list[Connection]:
        return [*self.subscribers, *self.sessions]

    def _register(self, connection: Connection) -> None:
        with self._lock:
            if isinstance(connection, ServedSession):
                self._sessions[connection.session_id] = connection
                self.history.append(connection)
            elif isinstance(connection, Subscriber):
                self._subscribers.append(connection)
                connection.target.subscribers.add(connection)
        self._on_change()

    def _unregister(self, connection: Connection) -> None:
        with self._lock:
            if isinstance(connection, ServedSession):
                self._sessions.pop(connection.session_id, None)
            elif isinstance(connection, Subscriber):
                with contextlib.suppress(ValueError):
                    self._subscribers.remove(connection)
                connection.target.subscribers.discard(connection)
        self._on_change()

    def set_faults(self, faults: Faults) -> None:
        """The new plan for what comes; live sessions following the shared plan switch too
        (one given its own keeps it)."""
        old, self.faults = self.faults, faults
        for connection in [*self.sessions, *self.subscribers]:
            if connection.faults is old:
                connection.faults = faults

    async def drop(self, how: str = "both") -> int:
        """Drop every live session the given way; their subscribers go with "both"."""
        if how not in DROP_MODES:
            raise ValueError(f"how must be one of {', '.join(DROP_MODES)}, not {how!r}")
        sessions = self.sessions
        await asyncio.gather(*(s.drop(how) for s in sessions))
        return len(sessions)

    async def send(self, message: dict[str, Any] | str, session_id: str | None = None) -> int:
        """Send a message to live sessions: a dict as JSON, text verbatim (junk included)."""
        text = message if isinstance(message, str) else json.dumps(message)
        sessions = [s for s in self.sessions if session_id in (None, s.session_id)]
        sent = await asyncio.gather(*(s.send_raw(text) for s in sessions))
        return sum(sent)

    # -- plain HTTP -------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if self.livekit_rooms is not None:
            response = await self.livekit_rooms.process_request(connection, request)
            if response is not None:
                return response  # with LiveKit's own CORS headers (rs/cors), once each
        response = await http_routes.answer(self, connection, request)
        return None if response is None else http_routes.for_browsers(request, response)

    # -- WebSocket routing ----------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path if ws.request else "/")
        query = http_routes.parse_query(parts.query)
        if self.livekit_rooms is not None and self.livekit_rooms.serves(parts.path):
            await self.livekit_rooms.handle(ws, parts.path, query)  # LiveKit tokens, no api_key
            return
        key = query.get("api_key")
        if not self.key_ok(key):
            expired = is_token_key(key) and self.tokens.key_refusal(key)
            await self._refuse(ws, expired or "Invalid API key")
            return
        if parts.path.startswith(SUBSCRIBE_PREFIX):
            await self._subscribe(ws, unquote(parts.path[len(SUBSCRIBE_PREFIX) :]).strip("/"))
            return
        name = query.get("model", "")
        model = self.models.get(name)
        if model is None:
            await self._refuse(ws, f"Unknown model: {name}")
            return
        if self.faults.refuse_connects > 0:
            self.faults.refuse_connects -= 1
            await self._refuse(ws, BUSY)
            return
        origin = ws.request.headers.get("Origin") if ws.request else None
        refusal = self.tokens.session_refusal(key, name, origin)
        if refusal is not None:
            await self._refuse(ws, refusal)
            return
        if parts.path != model.url_path:
            log.debug("serving %s on %s (its url_path is %s)", name, parts.path, model.url_path)
        local = ws.local_address
        session = ServedSession(
            ws,
            model,
            server_ip=str(local[0]) if local else self.host,
            server_port=int(local[1]) if local else self.port,
            loopback=self.loopback,
            faults=self.faults,
            on_closed=self._unregister,
            classic_model=CLASSIC_GENERATION.get(name) if name not in self._extra_models else None,
            livekit=self.livekit_rooms,
            files=self.files,
        )
        log.info("session %s opened (model %s)", session.session_id, model.name)
        self._register(session)
        token = self.tokens.get(key) if is_token_key(key) else None
        if token is not None and token.max_session_duration is not None:
            session.spawn(session.end_after(token.max_session_duration))
        await session.serve()

    async def _refuse(self, ws: ServerConnection, error: str) -> None:
        self.refused += 1
        await _reject(ws, error)

    async def _subscribe(self, ws: ServerConnection, sid: str) -> None:
        with self._lock:
            target = self._sessions.get(sid)
        if target is None or target.closing:
            await self._refuse(ws, "Invalid session")
            return
        subscriber = Subscriber(
            ws, target, loopback=self.loopback, faults=self.faults, on_closed=self._unregister
        )
        log.info("subscriber to session %s opened", sid)
        self._register(subscriber)
        await subscriber.serve()

    def key_ok(self, key: str | None) -> bool:
        """An API key this emulator takes (also for viewers' credentials and the REST API)."""
        if not key:
            return False
        if is_token_key(key):  # the emulator's client tokens (.rest): only live ones
            return self.tokens.key_refusal(key) is None
        return self.api_keys is None or key in self.api_keys


async def _reject(ws: ServerConnection, error: str) -> None:
    log.info("refusing a client: %s", error)  # never the key itself
    with contextlib.suppress(Exception):
        await ws.send(json.dumps({"type": "error", "error": error}))
        await ws.close(1008, error[:100])


def _livekit(loopback: bool, v1: bool) -> LiveKitRooms | None:
    try:
        from .livekit import LiveKitRooms
    except ImportError:  # livekit-protocol is missing: the emulator serves plain WebRTC only
        log.info("no livekit-protocol: LiveKit sessions are not served")
        return None
    return LiveKitRooms(loopback=loopback, single_pc=v1)


def _keys(api_keys: Collection[str] | str | None) -> frozenset[str] | None:
    if api_keys is None:
        return None
    if isinstance(api_keys, str):
        return frozenset([api_keys])
    return frozenset(api_keys)


def _models(models: Models) -> dict[str, ModelDefinition]:
    if models is None:
        return {}
    if isinstance(models, Mapping):
        return dict(models)
    return {model.name: model for model in models}
