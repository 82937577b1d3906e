"""Errors, with the codes of the official SDKs (PROTOCOL.md section 7).

Every error is a :class:`DecartSDKError` carrying ``code``, ``message``,
optional ``data`` and ``cause``. Each code has its own subclass so callers can
``except`` the kind they care about; a few also subclass the built-in they
stand for (``ValueError`` for bad input, ``TimeoutError`` for timeouts).
"""

from __future__ import annotations

from typing import Any


class DecartSDKError(Exception):
    """Base of every error this library raises."""

    code: str = "DECART_SDK_ERROR"

    def __init__(
        self,
        message: str,
        *,
        data: Any = None,
        cause: BaseException | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.cause = cause
        if code is not None:
            self.code = code
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.data, self.code))


def _rebuild(cls: type[DecartSDKError], message: str, data: Any, code: str) -> DecartSDKError:
    return cls(message, data=data, code=code)


class InvalidAPIKeyError(DecartSDKError):
    code = "INVALID_API_KEY"


class InvalidBaseURLError(DecartSDKError, ValueError):
    code = "INVALID_BASE_URL"


class InvalidInputError(DecartSDKError, ValueError):
    code = "INVALID_INPUT"


class InvalidOptionsError(DecartSDKError, ValueError):
    code = "INVALID_OPTIONS"


class ModelNotFoundError(DecartSDKError, LookupError):
    code = "MODEL_NOT_FOUND"


class WebSocketError(DecartSDKError, ConnectionError):
    code = "WEBRTC_WEBSOCKET_ERROR"


class ICEError(DecartSDKError, ConnectionError):
    code = "WEBRTC_ICE_ERROR"


class TimeoutError_(DecartSDKError, TimeoutError):
    code = "WEBRTC_TIMEOUT_ERROR"


class ServerError(DecartSDKError):
    code = "WEBRTC_SERVER_ERROR"


class SignalingError(DecartSDKError):
    code = "WEBRTC_SIGNALING_ERROR"


# A friendlier public name; the trailing underscore only avoids shadowing the builtin here.
WebRTCTimeoutError = TimeoutError_

# PROTOCOL.md section 8: server errors containing these are never retried.
_PERMANENT_MARKERS = (
    "permission denied",
    "not allowed",
    "invalid session",
    "401",
    "invalid api key",
    "unauthorized",
)


def is_permanent(message: str) -> bool:
    text = message.lower()
    return any(marker in text for marker in _PERMANENT_MARKERS)


def server_error(message: str) -> DecartSDKError:
    """The error for a server ``error`` message: a bad key gets its own code."""
    lowered = message.lower()
    if "api key" in lowered or "unauthorized" in lowered or "401" in lowered:
        return InvalidAPIKeyError(message)
    return ServerError(message)
