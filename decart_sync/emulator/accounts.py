"""What the emulator's REST API keeps: uploaded files and client tokens.

A client token is an ``ek_...`` key and its twin, a JWT signed by the
emulator's key (`signing`); either one is accepted as the key.

Both stores are bounded and thread-safe: the REST server's threads write them,
the emulator's loop reads them (``image_ref`` in ``set_image``, a client token
on the stream endpoint). Times are wall-clock seconds (``time.time``), as the
service's ``expires_at`` are; ``clock`` lets tests move them.

The signed form (EdDSA, Ed25519, with the claims decart 0.2.4's
``tokens/verify.py`` reads) is what the official SDKs call ``token`` and hand to
pages for realtime sessions and uploads. The emulator's signing key is its own:
its tokens verify against the emulator's JWKS (``GET /api/auth/jwks``), never
the platform's.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs

from .signing import PLATFORM_URL, Signer

MAX_FILE_BYTES = 10 * 1024 * 1024  # as the client's own image limit
MAX_FILES = 256
MAX_STORED_BYTES = 256 * 1024 * 1024
DEFAULT_TTL = 24 * 60 * 60  # the service's default, as the JS SDK documents it
MAX_TTL = 720 * 60 * 60
MIN_TTL = 60
MAX_TOKENS = 10_000
DEFAULT_EXPIRES_IN = 60
MAX_EXPIRES_IN = 3600
TOKEN_PREFIX = "ek_"  # the emulator's client tokens; any other key is an account key
JWT_PREFIX = "eyJ"  # a JSON header in base64url: the signed twin of a client token
TOKEN_USER = "emulator-user"  # the sub of every token the emulator signs

Clock = Callable[[], float]


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


class StoreError(Exception):
    """A request the store refuses: ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@attrs.define
class StoredFile:
    id: str
    filename: str | None
    mime_type: str
    data: bytes = attrs.field(repr=False)
    created: float
    expires: float | None  # None: persistent

    def describe(self) -> dict[str, Any]:
        """The service's ``FileReference``."""
        return {
            "id": self.id,
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": len(self.data),
            "created_at": iso(self.created),
            "expires_at": iso(self.expires),
        }


class FileStore:
    """Uploaded files by id, each until its TTL; full means refused, never evicted early."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}

    def add(self, data: bytes, filename: str | None, mime_type: str, ttl: str | None) -> StoredFile:
        if not data:
            raise StoreError(400, "the file is empty")
        if len(data) > MAX_FILE_BYTES:
            raise StoreError(413, f"the file is over {MAX_FILE_BYTES} bytes")
        now = self._clock()
        expires = None if ttl == "persistent" else now + parse_ttl(ttl)
        stored = StoredFile(
            f"file_{secrets.token_hex(12)}", filename, mime_type, data, now, expires
        )
        with self._lock:
            self._purge(now)
            total = sum(len(f.data) for f in self._files.values())
            if len(self._files) >= MAX_FILES or total + len(data) > MAX_STORED_BYTES:
                raise StoreError(507, "the emulator's file storage is full; delete some files")
            self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """The live file with this id; None when unknown, deleted or expired."""
        with self._lock:
            self._purge(self._clock())
            return self._files.get(file_id)

    def base64_of(self, file_id: object) -> str | None:
        """A live file's content as base64 (what ``image_data`` carries); None if none."""
        stored = self.get(file_id) if isinstance(file_id, str) else None
        return None if stored is None else base64.b64encode(stored.data).decode("ascii")

    def delete(self, file_id: str) -> bool:
        with self._lock:
            self._purge(self._clock())
            return self._files.pop(file_id, None) is not None

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._files)

    def _purge(self, now: float) -> None:
        for file_id in [i for i, f in self._files.items() if f.expires is not None]:
            expires = self._files[file_id].expires
            if expires is not None and expires <= now:
                del self._files[file_id]


def parse_ttl(ttl: str | None) -> int:
    if ttl is None:
        return DEFAULT_TTL
    try:
        seconds = int(ttl)
    except ValueError:
        seconds = -1
    if not MIN_TTL <= seconds <= MAX_TTL:
        raise StoreError(
            422, f'ttl_seconds must be an integer in [{MIN_TTL}, {MAX_TTL}] or "persistent"'
        )
    return seconds


@attrs.define
class ClientToken:
    api_key: str = attrs.field(repr=False)
    expires: float
    models: list[str] | None = None
    origins: list[str] | None = None
    max_session_duration: float | None = None
    metadata: dict[str, Any] | None = None
    token: str | None = attrs.field(default=None, repr=False)

    def claims(self, issued: float) -> dict[str, Any]:
        """What the signed ``token`` says, under the platform's claim names."""
        claims: dict[str, Any] = {
            "sub": TOKEN_USER,
            "iss": PLATFORM_URL,
            "aud": PLATFORM_URL,
            "iat": int(issued),
            "exp": int(self.expires),
            "jti": secrets.token_hex(8),
        }
        if self.models is not None:
            claims["models"] = self.models
        if self.origins is not None:
            claims["origins"] = self.origins
        if self.max_session_duration is not None:
            claims["constraints"] = {"realtime": {"maxSessionDuration": self.max_session_duration}}
        attribution = (self.metadata or {}).get("attribution")
        if isinstance(attribution, dict):
            claims["attribution"] = attribution
        return claims

    def describe(self) -> dict[str, Any]:
        """The service's answer to ``POST /v1/client/tokens``."""
        body: dict[str, Any] = {"apiKey": self.api_key, "expiresAt": iso(self.expires)}
        if self.token is not None:
            body["token"] = self.token
        if self.models is not None or self.origins is not None:
            permissions: dict[str, Any] = {}
            if self.models is not None:
                permissions["models"] = self.models
            if self.origins is not None:
                permissions["origins"] = self.origins
            body["permissions"] = permissions
        if self.max_session_duration is not None:
            body["constraints"] = {"realtime": {"maxSessionDuration": self.max_session_duration}}
        return body

    def refusal(self, now: float, model: str, origin: str | None) -> str | None:
        """Why this token may not open a session of ``model`` from ``origin``; None: it may."""
        if now >= self.expires:
            return "Invalid API key: the client token has expired"
        if self.models is not None and model not in self.models:
            return f"Model {model} is not allowed for this client token"
        if self.origins is not None and origin not in self.origins:
            return f"Origin {origin or '(none)'} is not allowed for this client token"
        return None


class TokenStore:
    """Client tokens by key, kept until they expire (at most `MAX_TOKENS`)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, ClientToken] = {}  # by api_key and by token
        self.signer = Signer()

    def create(self, body: Any) -> ClientToken:
        """A token from the JSON body of ``POST /v1/client/tokens``; StoreError if malformed."""
        if not isinstance(body, dict):
            raise StoreError(422, "the body must be a JSON object")
        expires_in = body.get("expiresIn", DEFAULT_EXPIRES_IN)
        if not _number(expires_in) or not 1 <= expires_in <= MAX_EXPIRES_IN:
            raise StoreError(422, f"expiresIn must be seconds in [1, {MAX_EXPIRES_IN}]")
        models = _names(body.get("allowedModels"), "allowedModels")
        origins = _names(body.get("allowedOrigins"), "allowedOrigins")
        constraints = body.get("constraints") or {}
        realtime = constraints.get("realtime") if isinstance(constraints, dict) else None
        duration = realtime.get("maxSessionDuration") if isinstance(realtime, dict) else None
        if duration is not None and (not _number(duration) or duration <= 0):
            raise StoreError(422, "constraints.realtime.maxSessionDuration must be positive")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise StoreError(422, "metadata must be an object")
        now = self._clock()
        token = ClientToken(
            f"{TOKEN_PREFIX}{secrets.token_urlsafe(24)}",
            now + expires_in,
            models,
            origins,
            duration,
            metadata,
        )
        token.token = self.signer.sign(token.claims(now))
        with self._lock:
            for key in [k for k, t in self._tokens.items() if t.expires <= now]:
                del self._tokens[key]
            if len(self._tokens) >= 2 * MAX_TOKENS:
                raise StoreError(429, "too many live client tokens")
            self._tokens[token.api_key] = self._tokens[token.token] = token
        return token

    def get(self, api_key: str | None) -> ClientToken | None:
        """The token with this key, in either form."""
        with self._lock:
            key = str(api_key)
            return self._tokens.get(key)

    def key_refusal(self, key: str | None) -> str | None:
        """For a client token's key (``ek_...``): why it is refused, None when it is live."""
        token = self.get(key)
        if token is None:
            return "Invalid API key"
        if self.now() >= token.expires:
            return "Invalid API key: the client token has expired"
        return None

    def session_refusal(self, key: str | None, model: str, origin: str | None) -> str | None:
        """Why a client token may not open this session; None for an allowed one (or an
        account key, which `key_refusal()` does not judge)."""
        token = self.get(key) if is_token_key(key) else None
        return None if token is None else token.refusal(self.now(), model, origin)

    def now(self) -> float:
        return self._clock()


def is_token_key(key: str | None) -> bool:
    """A client token's key, opaque or signed (the three base64url parts of a JWT)."""
    text = str(key or "")
    return text.startswith(TOKEN_PREFIX) or (text.startswith(JWT_PREFIX) and text.count(".") == 2)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _names(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise StoreError(422, f"{what} must be a list of strings")
    if len(value) > 20:
        raise StoreError(422, f"{what} takes at most 20 items")
    return list(value)

