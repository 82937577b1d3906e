"""Errors, with the codes of the official SDKs (docs/protocol.md, "Errors").

Every error is a [`DecartSDKError`][decart_sync.DecartSDKError] carrying ``code``, ``message``,
optional ``data`` and ``cause``. Each code has its own subclass so callers can
``except`` the kind they care about; a few also subclass the built-in they
stand for (``ValueError`` for bad input, ``TimeoutError`` for timeouts).

Whether an error is ``permanent`` (retrying cannot help; docs/protocol.md, "Errors")
is decided once, where the error is made: by its class, or for a server's
``error`` message by the server's own words
([`server_error()`][decart_sync.errors.server_error]). Nothing
later searches an error's text, which may hold a URL, a model name or our own
wording.
"""

from __future__ import annotations

import re
from typing import Any


class DecartSDKError(Exception):
    """Base of every error this library raises."""

    code: str = "DECART_SDK_ERROR"
    #: Retrying cannot help (a bad key, model or input): no reconnect. By class, unless given.
    permanent: bool = False

    def __init__(
        self,
        message: str,
        *,
        data: Any = None,
        cause: BaseException | None = None,
        code: str | None = None,
        permanent: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.cause = cause
        if code is not None:
            self.code = code
        if permanent is not None:
            self.permanent = permanent
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        args = (type(self), self.message, self.data, self.code, self.permanent)
        return (_rebuild, args)


def _rebuild(
    cls: type[DecartSDKError], message: str, data: Any, code: str, permanent: bool = False
) -> DecartSDKError:
    return cls(message, data=data, code=code, permanent=permanent)


class InvalidAPIKeyError(DecartSDKError):
    code = "INVALID_API_KEY"
    permanent = True


class InvalidBaseURLError(DecartSDKError, ValueError):
    code = "INVALID_BASE_URL"
    permanent = True


class InvalidInputError(DecartSDKError, ValueError):
    code = "INVALID_INPUT"
    permanent = True


class InvalidOptionsError(DecartSDKError, ValueError):
    code = "INVALID_OPTIONS"
    permanent = True


class ModelNotFoundError(DecartSDKError, LookupError):
    code = "MODEL_NOT_FOUND"
    permanent = True


class WebSocketError(DecartSDKError, ConnectionError):
    code = "WEBRTC_WEBSOCKET_ERROR"


class ICEError(DecartSDKError, ConnectionError):
    code = "WEBRTC_ICE_ERROR"


class TimeoutError_(DecartSDKError, TimeoutError):
    code = "WEBRTC_TIMEOUT_ERROR"


class ServerError(DecartSDKError):
    code = "WEBRTC_SERVER_ERROR"


class RejectedError(ServerError):
    """The server's ack refused a prompt or image (``success: false``). Whether it is
    ``permanent`` is the server's words' verdict; a connect does not try the same
    initial state again either way, since it would be refused again."""


class SignalingError(DecartSDKError):
    code = "WEBRTC_SIGNALING_ERROR"


class FilesError(DecartSDKError):
    """A files API call failed: ``FILES_UPLOAD_ERROR``, ``FILES_GET_ERROR`` or
    ``FILES_DELETE_ERROR`` (the JS SDK's codes), ``data["status"]`` the HTTP status."""

    code = "FILES_UPLOAD_ERROR"


class TokenCreateError(DecartSDKError):
    """``tokens.create()`` failed (the JS SDK's ``TOKEN_CREATE_ERROR``)."""

    code = "TOKEN_CREATE_ERROR"


class ProcessingError(DecartSDKError):
    """``DecartClient.process()`` failed (the official ``PROCESSING_ERROR``);
    ``data["status"]`` the HTTP status, None when there was no answer."""

    code = "PROCESSING_ERROR"


class QueueSubmitError(DecartSDKError):
    """A video job could not be submitted (``QUEUE_SUBMIT_ERROR``): refused input,
    a busy queue (HTTP 429), no answer; ``data["status"]`` the HTTP status."""

    code = "QUEUE_SUBMIT_ERROR"


class QueueStatusError(DecartSDKError):
    """A job's status could not be read (``QUEUE_STATUS_ERROR``); an unknown job id
    is HTTP 404 in ``data["status"]``."""

    code = "QUEUE_STATUS_ERROR"


class QueueResultError(DecartSDKError):
    """A job's result could not be fetched (``QUEUE_RESULT_ERROR``), e.g. it is not
    completed yet (HTTP 409) or unknown (404)."""

    code = "QUEUE_RESULT_ERROR"


class QueueTimeoutError(DecartSDKError, TimeoutError):
    """``submit_and_poll`` gave up waiting at its ``timeout``. The job may still
    finish at the service: ``data`` holds its ``job_id`` and last ``status``."""

    code = "QUEUE_TIMEOUT_ERROR"


class TokenDecodeError(DecartSDKError, ValueError):
    """The text is not a well-formed client-token JWT (decoding checks no signature)."""

    code = "TOKEN_DECODE_ERROR"
    permanent = True


class TokenVerifyError(DecartSDKError):
    """A client token failed verification: its signature, expiry, issuer, audience,
    an unknown signing key, or a JWKS that could not be fetched (the message says which)."""

    code = "TOKEN_VERIFY_ERROR"


# A friendlier public name; the trailing underscore only avoids shadowing the builtin here.
WebRTCTimeoutError = TimeoutError_

# The permanent words (docs/protocol.md, "Errors"), as whole words of the server's text: "401"
# is not "14010", and a URL or model name in our wrapping text is never looked at.
_BAD_KEY = re.compile(r"\b(?:401|unauthori[sz]ed|api[ _-]?key)\b", re.IGNORECASE)
_REFUSED = re.compile(
    r"\b(?:permission denied|not allowed|invalid session|file not found)\b", re.IGNORECASE
)


_NO_MODEL = re.compile(r"\b(?:unknown|invalid) model\b", re.IGNORECASE)


def is_permanent(error: BaseException | str) -> bool:
    """Whether retrying cannot help: the error's own verdict, made when it was made.

    A string is taken as a server's own error text (as in its ``error`` message).
    """
    if isinstance(error, str):
        return server_error(error).permanent
    return isinstance(error, DecartSDKError) and error.permanent


def server_error(message: str) -> DecartSDKError:
    """The error for a server ``error`` message: a bad key and an unknown model get their
    own codes (and are permanent: retrying the same name cannot help)."""
    if _BAD_KEY.search(message):
        return InvalidAPIKeyError(message)
    if _NO_MODEL.search(message):
        return ModelNotFoundError(message)
    return ServerError(message, permanent=bool(_REFUSED.search(message)))


# Raised by our own code or the media stack under it, these mean a broken install or a
# bug on this machine (an older pyOpenSSL ahead of the virtualenv makes aiortc's DTLS
# raise "TypeError: cert must be an X509 instance"): no retry fixes them. A network's
# faults come as OSError or the media library's own errors, and are retried.
_LOCAL_FAULTS = (TypeError, AttributeError, ImportError, NameError, NotImplementedError)


def local_fault(exc: BaseException | None) -> bool | None:
    """``permanent=`` for an error made of ``exc``: True for a local fault, else None
    (the error class decides)."""
    return True if isinstance(exc, _LOCAL_FAULTS) else None
