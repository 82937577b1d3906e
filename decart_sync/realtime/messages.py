"""Control messages (docs/protocol.md, "Messages from the client"): all we send, built here.

Also what the session should be showing (`Desired`), which becomes the
initial-state message on every (re)connect, and `parse()` for what the
server sends.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

Message = dict[str, Any]
FILE_REF_PREFIX = "file_"  # as files.FILE_REF_PREFIX; here without importing requests
UNSET: Any = object()  # "leave the server's value as it is", unlike None ("clear it")


@attrs.define
class Desired:
    """What the server should be showing; replayed on every (re)connect."""

    prompt: str | None = None
    enhance: bool = True
    image: str | None = None  # base64, or a "file_..." id (sent as image_ref)


def prompt(text: str, enhance: bool) -> Message:
    return {"type": "prompt", "prompt": text, "enhance_prompt": enhance}


def set_image(image: str | None, text: str | None = UNSET, enhance: bool | None = None) -> Message:
    """``image`` None clears the reference image; ``text`` left unset keeps the prompt.

    An uploaded file's ``"file_..."`` id goes as ``image_ref``, the JS SDK 0.1.20's
    reference (its ``setImage`` and ``buildInitialStateRequest``); base64 never starts
    so, as ``_`` is not a base64 character.
    """
    message: Message
    if image is not None and image.startswith(FILE_REF_PREFIX):
        message = {"type": "set_image", "image_ref": image}
    else:
        message = {"type": "set_image", "image_data": image}
    if text is not UNSET:
        message["prompt"] = text
        message["enhance_prompt"] = True if enhance is None else enhance
    elif enhance is not None:
        message["enhance_prompt"] = enhance
    return message


def passthrough() -> Message:
    """No image, no prompt: the model passes the input through."""
    return {"type": "set_image", "image_data": None, "prompt": None}


def initial(desired: Desired) -> Message | None:
    """The message that sets ``desired`` on a fresh session; None when nothing is set."""
    if desired.image is not None:
        text = UNSET if desired.prompt is None else desired.prompt
        return set_image(desired.image, text, desired.enhance)
    if desired.prompt is not None:
        return prompt(desired.prompt, desired.enhance)
    return None


def livekit_join(passthrough: bool) -> Message:
    """Ask for LiveKit room credentials; ``passthrough``: no initial prompt or image.
    ``client_capabilities.frame_timing``: we stamp each published frame (FrameMetadata
    user_timestamp) and want the stamp back on the output made from it, as the JS SDK
    0.1.20 asks when it measures glass-to-glass latency."""
    return {
        "type": "livekit_join",
        "passthrough": passthrough,
        "client_capabilities": {"frame_timing": True},
    }


def offer(sdp: str) -> Message:
    return {"type": "offer", "sdp": sdp}


def parse(text: str | bytes) -> Message:
    """A server message as a dict with a string ``type``; ValueError says what is wrong."""
    try:
        message = json.loads(text)
    except (ValueError, TypeError):
        raise ValueError("not JSON") from None
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    if not isinstance(message.get("type"), str):
        raise ValueError("without a type")
    return message
