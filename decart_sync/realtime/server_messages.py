"""What the service's control messages mean to a session (pure logic, no session inside).

The session hands every message its transport did not take to `interpret`
and acts on the meaning it gets back; a message that is not what the protocol
says raises ``KeyError``, ``TypeError`` or ``ValueError``, which the session logs
once per kind and otherwise ignores (docs/protocol.md lists the messages).
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import DecartSDKError, ServerError, TimeoutError_, server_error
from .messages import Message

# generation_ended reasons that end a LiveKit session, and what they are to the user.
ENDINGS: dict[str, tuple[type[DecartSDKError], str]] = {
    "insufficient_credits": (ServerError, "the account has run out of credits"),
    "moderation_violation": (ServerError, "the session was stopped for a moderation violation"),
    "timeout": (TimeoutError_, "the service ended the session: it reached its time limit"),
    "error": (ServerError, "the service ended the session after an internal error"),
}


@attrs.frozen
class Ack:
    """The answer to a request of ours (``prompt_ack``, ``set_image_ack``)."""

    message: Message


@attrs.frozen
class Generating:
    """The model is generating; ``seconds`` so far, when a tick says it."""

    seconds: int | None = None


@attrs.frozen
class Ended:
    """``generation_ended``, as the ``generation_ended`` event reports it; ``error`` when
    the session is over for it."""

    report: dict[str, Any]
    error: DecartSDKError | None = None


@attrs.frozen
class Failed:
    """The service's ``error``; a permanent one ends the session."""

    error: DecartSDKError


@attrs.frozen
class Ignored:
    """Nothing to do (``ready``), or a type we do not know (``known`` False)."""

    known: bool = True


Meaning = Ack | Generating | Ended | Failed | Ignored


def interpret(message: Message, transport: str) -> Meaning:
    """The meaning of one control message from the service, on ``transport``."""
    kind = message["type"]
    if kind in ("prompt_ack", "set_image_ack"):
        return Ack(message)
    if kind == "generation_started":
        return Generating()
    if kind == "generation_tick":  # a tick also means generating (a lost generation_started)
        return Generating(_seconds(message["seconds"]))
    if kind == "generation_ended":
        return _ended(message, transport)
    if kind == "error":
        text = message.get("error")
        text = text if isinstance(text, str) and text else "unknown server error"
        return Failed(server_error(text))
    return Ignored(known=kind == "ready")


def _ended(message: Message, transport: str) -> Ended:
    """Reported for every reason, as the JS SDK's ``generationEnded``. Over LiveKit the
    reasons in ENDINGS end the session with their codes; the plain-WebRTC service sends
    this message unreliably, so there it only informs."""
    seconds = message.get("seconds")
    reason = message.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise TypeError("reason is not text")
    report = {"seconds": None if seconds is None else _seconds(seconds), "reason": reason}
    if transport == "livekit" and reason in ENDINGS:
        kind, text = ENDINGS[reason]
        return Ended(report, kind(f"{text} ({reason})", data=message))
    return Ended(report)


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("seconds is not a number")
    return int(value)
