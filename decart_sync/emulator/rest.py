"""The emulator's REST API, ``http://host:rest_port``: files, client tokens, batch models.

The realtime port's websockets server cannot read request bodies, so REST has
a port of its own: a stdlib HTTP server on a thread
(``decart-sync-emulator-rest``, one short thread per request). The key goes in
``X-API-KEY`` and is checked as on the stream endpoint; errors answer
``{"detail": "..."}`` as the service does.

- ``POST /v1/files`` (multipart: ``file``, optional ``ttl_seconds``): the
  file's reference; ``GET`` / ``DELETE /v1/files/{id}``: 404 once unknown,
  deleted or expired. A client token may use them too.
- ``POST /v1/client/tokens`` (JSON, the JS SDK's camelCase body): a client
  token (``ek_...``, and its signed twin ``token``); an account key only.
  ``GET /api/auth/jwks`` (no key): the public key its tokens are signed with.
- ``POST /v1/generate/<model>``, ``POST /v1/jobs/<model>``, ``GET
  /v1/jobs/<id>`` and ``GET /v1/jobs/<id>/content``: image and video models
  (`batch`); a client token only for the models it allows (403).
- ``POST /watch-stream/{room}``: a viewer's credentials, as on the realtime
  port (`http_routes`): the JS SDK's ``subscribe`` asks its ``baseUrl``.

Browsers: every answer, errors included, allows any origin, and ``OPTIONS``
answers a CORS preflight (the methods above, whatever headers were asked for),
so a web page on another origin can use the API with a client token.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from .._threads import Worker
from .accounts import MAX_FILE_BYTES, FileStore, StoreError, TokenStore, is_token_key
from .batch import Batch
from .signing import JWKS_PATH

log = logging.getLogger(__name__)

THREAD_NAME = "decart-sync-emulator-rest"
FILES_PATH = "/v1/files"
TOKENS_PATH = "/v1/client/tokens"
WATCH_PREFIX = "/watch-stream/"
MAX_BODY = MAX_FILE_BYTES + 64 * 1024  # the file and its multipart framing
MAX_JSON = 64 * 1024
MAX_MEDIA_BODY = 128 * 1024 * 1024  # a video for a job, and its multipart framing
GENERATE_PATH = "/v1/generate/"
JOBS_PATH = "/v1/jobs/"
METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Content-Type, X-API-KEY"  # what the official clients send
PREFLIGHT_MAX_AGE = 600  # seconds a browser may keep a preflight's answer


class RestServer:
    """Serves ``files`` and ``tokens`` on ``host:port`` until `close()`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        files: FileStore,
        tokens: TokenStore,
        batch: Batch,
        account_key_ok: Callable[[str | None], bool],
        watch: Callable[[str], tuple[int, dict[str, str] | str]] | None = None,
    ) -> None:
        self.files = files
        self.tokens = tokens
        self.batch = batch
        self.account_key_ok = account_key_ok
        self.watch = watch  # room -> (status, a viewer's credentials or why not)
        self._httpd = _Server((host, port), _Handler)
        self._httpd.rest = self
        self._worker: Worker | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> RestServer:
        serve = lambda: self._httpd.serve_forever(poll_interval=0.1)  # noqa: E731
        self._worker = Worker(serve, THREAD_NAME, wake=self._httpd.shutdown).start()
        return self

    def close(self, timeout: float = 1.0) -> None:
        if self._worker is not None:
            self._worker.stop(timeout)
        self.batch.close(timeout)
        self._httpd.server_close()

    def key_ok(self, key: str | None, *, tokens_allowed: bool) -> str | None:
        """Why ``key`` may not make this request (an error text); None: it may."""
        if is_token_key(key):
            token = self.tokens.get(str(key))
            if token is None or self.tokens.now() >= token.expires:
                return "Invalid API key"
            if not tokens_allowed:
                return "a client token cannot create client tokens; use the account's key"
            return None
        return None if self.account_key_ok(key) else "Invalid API key"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    rest: RestServer

    def process_request(self, request: Any, client_address: Any) -> None:
        # Named, so thread dumps and leak checks can tell whose thread it is.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{THREAD_NAME}-request",
            daemon=True,
        )
        thread.start()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "decart-sync-emulator"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("rest: " + format, *args)  # the key is in a header, never in the line

    def end_headers(self) -> None:
        # On every answer, http.server's own errors too: a browser reads none without them.
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", METHODS)
        headers = getattr(self, "headers", None)  # unset when the request line was bad
        asked = headers.get("Access-Control-Request-Headers") if headers else None
        self.send_header("Access-Control-Allow-Headers", asked or ALLOWED_HEADERS)
        super().end_headers()

    def do_OPTIONS(self) -> None:
        """A CORS preflight: any origin, our methods, the headers the page asked for."""
        self.send_response(204)
        self.send_header("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        model = _tail(path, GENERATE_PATH) or _tail(path, JOBS_PATH)
        if path == FILES_PATH:
            self._guarded(self._upload, tokens_allowed=True)
        elif path == TOKENS_PATH:
            self._guarded(self._create_token, tokens_allowed=False)
        elif model is not None and "/" not in model:
            jobs = path.startswith(JOBS_PATH)
            self._guarded(lambda: self._batch(model, jobs), tokens_allowed=True, model=model)
        elif path.startswith(WATCH_PREFIX) and self.server.rest.watch is not None:
            room = unquote(path[len(WATCH_PREFIX) :])
            self._guarded(lambda: self._watch(room), tokens_allowed=True)
        else:
            self._error(404, f"no endpoint POST {path}")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        file_id = self._file_id()
        job = _tail(path, JOBS_PATH)
        if path == JWKS_PATH:
            self._json(200, self.server.rest.tokens.signer.jwks())
        elif file_id is not None:
            self._guarded(lambda: self._get(file_id), tokens_allowed=True)
        elif job is not None and job.count("/") <= 1:
            self._guarded(lambda: self._job(job), tokens_allowed=True)
        else:
            self._error(404, f"no endpoint GET {urlsplit(self.path).path}")

    def do_DELETE(self) -> None:
        file_id = self._file_id()
        if file_id is not None:
            self._guarded(lambda: self._delete(file_id), tokens_allowed=True)
        else:
            self._error(404, f"no endpoint DELETE {urlsplit(self.path).path}")

    # -- endpoints --------------------------------------------------------------

    def _upload(self) -> None:
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise StoreError(415, "the body must be multipart/form-data")
        fields = _multipart(content_type, self._body(MAX_BODY))
        part = fields.get("file")
        if part is None:
            raise StoreError(422, "the form has no 'file' field")
        ttl = fields.get("ttl_seconds")
        ttl_text = None if ttl is None else _payload(ttl).decode("utf-8", "replace").strip()
        mime = part.get_content_type() if "Content-Type" in part else "application/octet-stream"
        stored = self.server.rest.files.add(_payload(part), part.get_filename(), mime, ttl_text)
        log.info("file %s uploaded (%d bytes)", stored.id, len(stored.data))
        self._json(200, stored.describe())

    def _get(self, file_id: str) -> None:
        stored = self.server.rest.files.get(file_id)
        if stored is None:
            raise StoreError(404, f"File not found: {file_id}")
        self._json(200, stored.describe())

    def _delete(self, file_id: str) -> None:
        if not self.server.rest.files.delete(file_id):
            raise StoreError(404, f"File not found: {file_id}")
        self._json(200, {"id": file_id, "deleted": True})

    def _create_token(self) -> None:
        try:
            body = json.loads(self._body(MAX_JSON) or b"{}")
        except ValueError:
            raise StoreError(422, "the body is not JSON") from None
        token = self.server.rest.tokens.create(body)
        log.info("client token issued (expires %s)", token.describe()["expiresAt"])
        self._json(200, token.describe())

    def _batch(self, model: str, jobs: bool) -> None:
        self.server.rest.batch.received()
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise StoreError(415, "the body must be multipart/form-data")
        parts = _multipart(content_type, self._body(MAX_MEDIA_BODY))
        fields = {name: _payload(part) for name, part in parts.items()}
        batch = self.server.rest.batch
        if jobs:
            job = batch.submit(model, fields)
            log.info("job %s submitted to %s", job.job_id, model)
            self._json(200, job.describe())
        else:
            self._send(200, batch.generate(model, fields), "image/png")

    def _job(self, tail: str) -> None:
        job_id, _, what = tail.partition("/")
        batch = self.server.rest.batch
        if not what:
            job = batch.job(job_id)
            job.polls += 1
            self._json(200, job.describe())
        elif what == "content":
            self._send(200, batch.content(job_id), "video/mp4")
        else:
            raise StoreError(404, f"no endpoint GET {JOBS_PATH}{tail}")
    def _watch(self, room: str) -> None:
        assert self.server.rest.watch is not None
        status, body = self.server.rest.watch(room)
        if isinstance(body, str):
            raise StoreError(status, body)
        self._json(status, body)

    # -- plumbing ---------------------------------------------------------------

    def _guarded(
        self, handle: Callable[[], None], *, tokens_allowed: bool, model: str | None = None
    ) -> None:
        key = self.headers.get("X-API-KEY")
        refusal = self.server.rest.key_ok(key, tokens_allowed=tokens_allowed)
        token = self.server.rest.tokens.get(key) if is_token_key(key) else None
        allowed = None if token is None else token.models
        if refusal is None and model is not None and allowed is not None and model not in allowed:
            refusal = f"Model {model} is not allowed for this client token"
        if refusal is not None:
            self._error(401 if refusal.startswith("Invalid API key") else 403, refusal)
            return
        try:
            handle()
        except StoreError as exc:
            self._error(exc.status, str(exc))
        except _Gone:
            self.close_connection = True

    def _file_id(self) -> str | None:
        path = urlsplit(self.path).path
        if not path.startswith(FILES_PATH + "/"):
            return None
        file_id = unquote(path[len(FILES_PATH) + 1 :]).strip("/")
        return file_id or None

    def _body(self, limit: int) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise StoreError(411, "a Content-Length is needed") from None
        if length > limit:
            raise StoreError(413, f"the body is over {limit} bytes")
        self._body_read = True
        data = self.rfile.read(length) if length > 0 else b""
        if len(data) < length:
            raise _Gone  # the client stopped sending: nobody to answer
        return data

    def _drain(self) -> None:
        """Read a body left unread before refusing it: a client still sending might see
        its connection reset instead of the answer."""
        if getattr(self, "_body_read", False):
            return
        self._body_read = True
        try:
            left = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            left = 0
        if left > MAX_MEDIA_BODY:
            self.close_connection = True
            return
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                raise _Gone
            left -= len(chunk)

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        try:
            if status >= 400:
                self._drain()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (_Gone, ConnectionError):  # the client went away: nobody to answer
            self.close_connection = True

    def _error(self, status: int, detail: str) -> None:
        log.info("rest: %s %s -> %d %s", self.command, urlsplit(self.path).path, status, detail)
        self._json(status, {"detail": detail})


class _Gone(Exception):
    """The client closed its connection in the middle of the request."""


def _multipart(content_type: str, body: bytes) -> dict[str, EmailMessage]:
    """The form's fields by name (the first of each)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise StoreError(422, "the multipart body could not be read")
    fields: dict[str, EmailMessage] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name not in fields and isinstance(part, EmailMessage):
            fields[name] = part
    return fields


def _tail(path: str, prefix: str) -> str | None:
    """What follows ``prefix`` in ``path`` (URL-decoded), None when nothing does."""
    if not path.startswith(prefix) or len(path) == len(prefix):
        return None
    return unquote(path[len(prefix) :])


def _payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""
