"""The checks of what the user passed: each problem becomes a coded error a person can act on."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from .. import signals
from ..errors import InvalidAPIKeyError, InvalidBaseURLError, InvalidInputError, InvalidOptionsError
from ..models import ModelDefinition
from ..realtime import images, transports
from ..realtime.messages import Desired
from ..realtime.tracks import PIXEL_FORMATS
from ..realtime.transports.loopback import is_loopback_url

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://api3.decart.ai"
DEFAULT_ICE_SERVERS = ("stun:stun.l.google.com:19302",)
MAX_PROMPT_LENGTH = 1000


@attrs.define
class InitialState:
    """What the session starts with; ``image`` takes every kind ``set_image`` does."""

    prompt: str | None = None
    enhance: bool = True
    image: Any = None


def transport(kind: str | None, model: ModelDefinition) -> str:
    """The transport asked for, else the model's; checked to be usable here."""
    chosen = model.transport if kind is None else kind
    transports.check(chosen)
    return chosen


def video_codec(codec: str) -> str:
    if codec not in transports.CODECS:
        raise InvalidOptionsError(
            f"video_codec must be one of {', '.join(transports.CODECS)}, got {codec!r}"
        )
    return codec


def check_prompt(prompt: Any) -> None:
    if not isinstance(prompt, str):
        raise InvalidInputError(f"a prompt must be text, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InvalidInputError("the prompt is empty; describe the style you want")
    if len(prompt) > MAX_PROMPT_LENGTH:
        raise InvalidInputError(
            f"the prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_LENGTH}"
        )


def api_key(key: str | None) -> str:
    key = key if key is not None else os.environ.get("DECART_API_KEY")
    if not isinstance(key, str) or not key.strip():
        raise InvalidAPIKeyError(
            "no API key: pass api_key= or set DECART_API_KEY "
            "(for the local emulator any non-empty key works)"
        )
    return key.strip()


def base_url(url: str | None) -> str:
    url = url or os.environ.get("DECART_REALTIME_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise InvalidBaseURLError(
            f"base URL {url!r} must be ws://, wss://, http:// or https:// with a host"
        )
    return parts._replace(scheme=scheme).geturl().rstrip("/")


def ice_servers(servers: Sequence[str] | None, base: str) -> list[str]:
    if servers is None:
        # STUN finds nothing useful for a server on this machine, and may be unreachable.
        return [] if is_loopback_url(base) else list(DEFAULT_ICE_SERVERS)
    if isinstance(servers, str) or not all(isinstance(s, str) for s in servers):
        raise InvalidOptionsError("ice_servers must be a list of stun:/turn: URLs")
    return list(servers)


def verify_tls(verify: bool) -> bool:
    if not verify:
        log.warning("TLS certificate verification is OFF for the signaling WebSocket")
    return bool(verify)


def origin(value: Any, what: str = "origin") -> str | None:
    """A full web origin, ``scheme://host[:port]``, as browsers send it; None: none sent.

    The service matches a client token's allowed origins verbatim, so a path, query or
    trailing slash (which no browser sends) is refused here rather than there.
    """
    if value is None:
        return None
    error = InvalidOptionsError(
        f"{what} must be a full origin such as 'https://example.com' or "
        f"'http://localhost:3000' (scheme://host[:port], nothing after), got {value!r}"
    )
    if not isinstance(value, str):
        raise error
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises ValueError on a bad port
    except ValueError:
        raise error from None
    if (
        not parts.scheme
        or not parts.hostname
        or parts.path
        or any(c in value for c in "?#@")
        or value != value.strip()
        or value.endswith(":")
    ):
        raise error
    return value


def queue_timeout(seconds: Any) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise InvalidOptionsError(
            "queue_timeout must be a positive number of seconds or None (no bound), "
            f"got {seconds!r}"
        )
    return float(seconds)


def handlers(
    value: Mapping[str, Callable[[Any], Any]] | None,
) -> list[tuple[signals.Event, Callable[[Any], Any]]]:
    """``on=``: event names (as ``client.on`` takes them) to callables."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise InvalidOptionsError(
            "on must be a dict of event names to handlers, e.g. "
            f"on={{'queue_position': print}}, got {type(value).__name__}"
        )
    checked = []
    for name, handler in value.items():
        if not callable(handler):
            raise InvalidOptionsError(f"on[{name!r}] must be callable, got {handler!r}")
        checked.append((signals.named(name), handler))
    return checked


def check_pixel_format(pixel_format: str) -> None:
    if pixel_format not in PIXEL_FORMATS:
        raise InvalidOptionsError(
            f"pixel_format must be one of {', '.join(PIXEL_FORMATS)}, got {pixel_format!r}"
        )


def check_timeout(timeout: Any) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidOptionsError(f"timeout must be a positive number of seconds, got {timeout!r}")


def desired(initial: InitialState | dict[str, Any] | None, pixel_format: str) -> Desired:
    if initial is None:
        return Desired()
    if isinstance(initial, dict):
        unknown = set(initial) - {"prompt", "image"}
        if unknown:
            raise InvalidOptionsError(f"unknown initial_state keys: {sorted(unknown)}")
        prompt = initial.get("prompt")
        if isinstance(prompt, dict):
            text, enhance = prompt.get("text"), prompt.get("enhance", True)
            initial = InitialState(text, enhance, initial.get("image"))
        else:
            initial = InitialState(prompt, True, initial.get("image"))
    if not isinstance(initial, InitialState):
        raise InvalidOptionsError("initial_state must be a dict or an InitialState")
    if initial.prompt is not None:
        check_prompt(initial.prompt)
    image = None
    if initial.image is not None:
        image = images.to_wire(initial.image, pixel_format=pixel_format)
    return Desired(prompt=initial.prompt, enhance=bool(initial.enhance), image=image)
