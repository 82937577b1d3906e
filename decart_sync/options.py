"""What the user passed, checked: each problem becomes a coded error a person can act on.

Also the URLs of docs/protocol.md, "Endpoints", built from checked options.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote, urlencode, urlsplit

import attrs

from . import signals
from ._version import __version__
from .errors import InvalidAPIKeyError, InvalidBaseURLError, InvalidInputError, InvalidOptionsError
from .metrics.rates import check_interval
from .models import ModelDefinition
from .realtime import images, transports
from .realtime.messages import Desired
from .realtime.subscribe_tokens import SubscribeToken
from .realtime.tracks import PIXEL_FORMATS
from .realtime.transports.loopback import is_loopback_url

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://api3.decart.ai"
DEFAULT_ICE_SERVERS = ("stun:stun.l.google.com:19302",)
MAX_PROMPT_LENGTH = 1000
RESOLUTIONS = ("720p", "1080p")
SPEEDS = ("fast",)


@attrs.define
class InitialState:
    """What the session starts with; ``image`` takes every kind ``set_image`` does."""

    prompt: str | None = None
    enhance: bool = True
    image: Any = None


@attrs.frozen
class Option:
    """One keyword of [`connect()`][decart_sync.connect]: the single place it is defined."""

    name: str
    annotation: str  # as written in connect()'s signature
    default: Any
    doc: str
    check: Callable[[Any], object] | None = None  # a value check that needs nothing else
    account: bool = False  # the account's (DecartClient supplies it), not a session's


#: connect()'s keywords besides ``source``, in its order; connect() keeps them as
#: explicit parameters for IDEs and type checkers, and a unit test holds the two together.
CONNECT_OPTIONS: tuple[Option, ...] = (
    Option("model", "ModelDefinition | str | None", None, "the model (required)"),
    Option("api_key", "str | None", None, "the key; default DECART_API_KEY", account=True),
    Option("base_url", "str | None", None, "the service; default DEFAULT_BASE_URL", account=True),
    Option(
        "initial_state",
        "InitialState | dict[str, Any] | None",
        None,
        "prompt and image the session starts with",
    ),
    Option("pixel_format", "str", "rgb24", "of frames in and out", lambda v: check_pixel_format(v)),
    Option("timeout", "float", 30.0, "seconds to connect", lambda v: check_timeout(v)),
    Option("ice_servers", "Sequence[str] | None", None, "stun:/turn: URLs (WebRTC)"),
    Option("customize_offer", "Callable[[Any], Any] | None", None, "edits the SDP offer"),
    Option("on_remote_stream", "Callable[[Any], Any] | None", None, "gets the output track"),
    Option("reconnect", "bool", True, "reconnect after a drop, replaying prompt and image"),
    Option("verify_tls", "bool", True, "check the signaling socket's certificate"),
    Option("integration", "str | None", None, "appended to the user agent", account=True),
    Option("transport", "str | None", None, "'webrtc' or 'livekit'; default the model's"),
    Option("video_codec", "str", "h264", "LiveKit's codec", lambda v: video_codec(v)),
    Option("resolution", "str | None", None, "LiveKit sessions: '720p' or '1080p'"),
    Option("speed", "str | None", None, "LiveKit sessions: 'fast'"),
    Option("stats_interval", "float | None", None, "seconds between stats events", check_interval),
    Option("origin", "str | None", None, "Origin header (scoped tokens)", lambda v: origin(v)),
    Option(
        "queue_timeout",
        "float | None",
        None,
        "seconds to wait in the service's queue; None: no bound",
        lambda v: queue_timeout(v),
    ),
    Option(
        "query_params",
        "Mapping[str, str] | None",
        None,
        "extra query parameters of the stream URL",
        lambda v: query_params(v),
    ),
    Option("mirror", "bool", False, "flip the input left to right (a selfie camera)"),
    Option(
        "on",
        "Mapping[str, Callable[[Any], Any]] | None",
        None,
        "event handlers, called also during connect",
        lambda v: handlers(v),
    ),
)
CONNECT_KEYWORDS = {option.name: option for option in CONNECT_OPTIONS}

if TYPE_CHECKING:
    # What type checkers see; at run time it is built from CONNECT_OPTIONS (below), and a
    # unit test fails when this declaration and the table differ.
    class ConnectOptions(TypedDict, total=False):
        """The keywords of [`connect()`][decart_sync.connect] besides the account's
        (for ``DecartClient.realtime``)."""

        model: ModelDefinition | str | None
        initial_state: InitialState | dict[str, Any] | None
        pixel_format: str
        timeout: float
        ice_servers: Sequence[str] | None
        customize_offer: Callable[[Any], Any] | None
        on_remote_stream: Callable[[Any], Any] | None
        reconnect: bool
        verify_tls: bool
        transport: str | None
        video_codec: str
        resolution: str | None
        speed: str | None
        stats_interval: float | None
        origin: str | None
        queue_timeout: float | None
        query_params: Mapping[str, str] | None
        mirror: bool
        on: Mapping[str, Callable[[Any], Any]] | None

else:
    ConnectOptions = TypedDict(
        "ConnectOptions",
        {o.name: o.annotation for o in CONNECT_OPTIONS if not o.account},
        total=False,
    )
    ConnectOptions.__doc__ = (
        "The keywords of `connect()` besides the account's (for ``DecartClient.realtime``)."
    )


def forwarded(
    keywords: dict[str, Any], to: str, *, account: bool = True, own: Sequence[str] = ()
) -> dict[str, Any]:
    """``keywords`` that ``to`` hands on to connect(), checked now: an unknown name or a bad
    value fails before anything opens. ``account=False``: the account's are not taken;
    ``own``: ``to``'s own keywords, named in the message too."""
    for name, value in keywords.items():
        option = CONNECT_KEYWORDS.get(name)
        if option is None or (option.account and not account):
            known = [*own, *(o.name for o in CONNECT_OPTIONS if account or not o.account)]
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise InvalidOptionsError(
                f"{to} got an unknown keyword {name!r}; {hint}it takes {', '.join(known)}"
            )
        if option.check is not None:
            option.check(value)
    return keywords


def with_prompt(
    keywords: dict[str, Any],
    prompt: str | None,
    *,
    enhance: bool = True,
    image: Any = None,
    both: str = "refuse",
) -> dict[str, Any]:
    """``keywords`` with ``initial_state`` made from ``prompt`` (and ``image``) when given:
    the one way an entry point's ``prompt=`` becomes a session's initial state.

    When ``initial_state`` is there too: ``both="refuse"`` raises, ``"initial_state"``
    keeps it (the prompt only labels the view).
    """
    if prompt is None and image is None:
        return keywords
    if "initial_state" in keywords:
        if both == "refuse":
            raise InvalidOptionsError("pass either prompt= or initial_state=, not both")
        return keywords
    return {**keywords, "initial_state": InitialState(prompt, enhance, image)}


class SubscribeOptions(TypedDict, total=False):
    """The keywords of [`subscribe()`][decart_sync.subscribe] besides the account's."""

    pixel_format: str
    timeout: float
    ice_servers: Sequence[str] | None
    model: ModelDefinition | str | None
    verify_tls: bool


def user_agent(integration: str | None = None) -> str:
    agent = f"decart-sync/{__version__} lang/py"
    return f"{agent} {integration}" if integration else agent


def stream_url(
    base: str,
    model: ModelDefinition,
    key: str,
    integration: str | None,
    livekit: dict[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The stream endpoint; ``livekit``: the query of a LiveKit session, in the SDK's order;
    ``extra``: the user's ``query_params`` (checked: they cannot replace ours)."""
    query = {"api_key": key, "model": model.name, **(livekit or {}), **(extra or {})}
    query["user_agent"] = user_agent(integration)
    return f"{base}{model.url_path}?{urlencode(query, quote_via=quote)}"


# What the client itself puts in the stream URL: query_params may not set them (the JS
# SDK lets api_key and model win silently; refusing says so).
RESERVED_QUERY = (
    "api_key",
    "model",
    "user_agent",
    "livekit_early_room_info",
    "resolution",
    "speed",
)


def query_params(params: Any) -> dict[str, str]:
    if params is None:
        return {}
    if not isinstance(params, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        raise InvalidOptionsError(
            f"query_params must be a dict of text to text, e.g. {{'region': 'eu'}}, got {params!r}"
        )
    taken = sorted(set(params) & set(RESERVED_QUERY))
    if taken:
        raise InvalidOptionsError(
            f"query_params cannot set {', '.join(taken)}: pass those as connect() options"
        )
    return dict(params)


def livekit_query(resolution: str | None, speed: str | None) -> dict[str, str]:
    query = {"livekit_early_room_info": "true"}
    if resolution is not None:
        if resolution not in RESOLUTIONS:
            raise InvalidOptionsError(
                f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}"
            )
        query["resolution"] = resolution
    if speed is not None:
        if speed not in SPEEDS:
            raise InvalidOptionsError(f"speed must be one of {', '.join(SPEEDS)}, got {speed!r}")
        query["speed"] = speed
    return query


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


def subscribe_url(base: str, token: SubscribeToken, key: str, integration: str | None) -> str:
    query = {"IP": token.ip, "port": token.port, "api_key": key}
    query["user_agent"] = user_agent(integration)
    return f"{base}/subscribe/{quote(token.sid)}?{urlencode(query, quote_via=quote)}"


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
