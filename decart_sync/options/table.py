"""The one table of connect()'s options, and what is read from it at run time.

Each option's name, type, default, meaning and check are written here once.
The typed view (``typed.py``) is generated from the table, the docs' options
table is built from it at docs build time, and ``decart-sync stream`` takes
its connect flags from it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

import attrs

from ..errors import InvalidOptionsError
from ..metrics.rates import check_interval
from ..models import ModelDefinition
from ..realtime.tracks import PIXEL_FORMATS
from ..realtime.transports import CODECS, TRANSPORTS
from .urls import RESOLUTIONS, SPEEDS, query_params
from .values import (
    InitialState,
    check_pixel_format,
    check_timeout,
    handlers,
    origin,
    queue_timeout,
    video_codec,
)

if TYPE_CHECKING:
    from .typed import ConnectKeywords

F = TypeVar("F", bound=Callable[..., Any])


@attrs.frozen
class Option:
    """One keyword of [`connect()`][decart_sync.connect]: the single place it is defined."""

    name: str
    annotation: str  # as type checkers read it (typed.py is generated from it)
    default: Any
    doc: str  # Markdown: the docs table, the typed view's docstrings and CLI help show it
    check: Callable[[Any], object] | None = None  # a value check that needs nothing else
    account: bool = False  # the account's (DecartClient supplies it), not a session's
    choices: tuple[str, ...] = ()  # the values it takes, when they are a short list
    required: bool = False  # connect() refuses to go without it (its default is None)


#: connect()'s keywords besides ``source``, in the order help() shows them.
CONNECT_OPTIONS: tuple[Option, ...] = (
    Option(
        "model",
        "ModelDefinition | str | None",
        None,
        'The model: `models.realtime.mirage()`, a registry name such as `"lucy-2.1"`, '
        "or a `ModelDefinition`.",
        required=True,
    ),
    Option(
        "api_key",
        "str | None",
        None,
        "The account's key; default `$DECART_API_KEY`.",
        account=True,
    ),
    Option(
        "base_url",
        "str | None",
        None,
        "The realtime service; default `$DECART_REALTIME_BASE_URL`, else `wss://api3.decart.ai`.",
        account=True,
    ),
    Option(
        "initial_state",
        "InitialState | dict[str, Any] | None",
        None,
        "The prompt and reference image the session starts with: an `InitialState` or "
        '`{"prompt": {"text": ..., "enhance": True}, "image": ...}`.',
    ),
    Option(
        "pixel_format",
        "str",
        "rgb24",
        "Of the frames you send and get back (`bgr24`: OpenCV's order).",
        lambda v: check_pixel_format(v),
        choices=PIXEL_FORMATS,
    ),
    Option(
        "timeout",
        "float",
        30.0,
        "Seconds to connect, retries included; time in the service's queue does not count.",
        lambda v: check_timeout(v),
    ),
    Option(
        "ice_servers",
        "Sequence[str] | None",
        None,
        "`stun:`/`turn:` URLs (plain WebRTC); default a public STUN server, none for a "
        "service on this machine.",
    ),
    Option(
        "customize_offer",
        "Callable[[Any], Any] | None",
        None,
        "Called with the SDP offer before it is sent; returns the offer to send (plain WebRTC).",
    ),
    Option(
        "on_remote_stream",
        "Callable[[Any], Any] | None",
        None,
        "Called with the output media track when it arrives.",
    ),
    Option(
        "reconnect",
        "bool",
        True,
        "Reconnect after a drop, replaying the prompt and image.",
    ),
    Option(
        "verify_tls",
        "bool",
        True,
        "Check the signaling socket's TLS certificate (off: a warning is logged).",
    ),
    Option(
        "integration",
        "str | None",
        None,
        "Your integration's name, appended to the user agent.",
        account=True,
    ),
    Option(
        "transport",
        "str | None",
        None,
        "The media path: LiveKit or plain WebRTC; default the model's (LiveKit for today's "
        "models, plain WebRTC for `mirage`, `mirage_v2`, `lucy_v2v_720p_rt`, `lucy_2_rt`, "
        "`live_avatar` and custom models).",
        choices=TRANSPORTS,
    ),
    Option(
        "video_codec",
        "str",
        "h264",
        "The codec a LiveKit session sends.",
        lambda v: video_codec(v),
        choices=CODECS,
    ),
    Option(
        "resolution",
        "str | None",
        None,
        "The resolution a LiveKit session asks for; default the service's.",
        choices=RESOLUTIONS,
    ),
    Option(
        "speed",
        "str | None",
        None,
        "The speed a LiveKit session asks for; default the service's.",
        choices=SPEEDS,
    ),
    Option(
        "stats_interval",
        "float | None",
        None,
        "Seconds between `stats` events (the `client.stats` figures); default none.",
        check_interval,
    ),
    Option(
        "origin",
        "str | None",
        None,
        "Sent as the control WebSocket's `Origin` header (`https://example.com`), "
        "for a client token scoped to origins.",
        lambda v: origin(v),
    ),
    Option(
        "queue_timeout",
        "float | None",
        None,
        "Seconds a LiveKit session may wait in the service's queue "
        "(`queue_position` events count down); default no bound.",
        lambda v: queue_timeout(v),
    ),
    Option(
        "query_params",
        "Mapping[str, str] | None",
        None,
        "Added to the stream URL's query; they cannot replace the client's own.",
        lambda v: query_params(v),
    ),
    Option(
        "mirror",
        "bool",
        False,
        "Flip the input left to right before it is sent (a selfie camera).",
    ),
    Option(
        "on",
        "Mapping[str, Callable[[Any], Any]] | None",
        None,
        "Event names to handlers, called as events happen, also during connect: "
        '`{"queue_position": show}`.',
        lambda v: handlers(v),
    ),
)
BY_NAME = {option.name: option for option in CONNECT_OPTIONS}


def forwarded(
    keywords: dict[str, Any], to: str, *, account: bool = True, own: Sequence[str] = ()
) -> dict[str, Any]:
    """``keywords`` that ``to`` hands on to connect(), checked now: an unknown name or a bad
    value fails before anything opens. ``account=False``: the account's are not taken;
    ``own``: ``to``'s own keywords, named in the message too."""
    for name, value in keywords.items():
        option = BY_NAME.get(name)
        if option is None or (option.account and not account):
            known = [*own, *(o.name for o in CONNECT_OPTIONS if account or not o.account)]
            raise InvalidOptionsError(
                f"{to} got an unknown keyword {name!r}; {_hint(name, known)}"
                f"it takes {', '.join(known)}"
            )
        if option.check is not None:
            option.check(value)
    return keywords


def _hint(name: str, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, known, n=1)
    return f"did you mean {near[0]}? " if near else ""


def completed(keywords: Mapping[str, Any], to: str) -> ConnectKeywords:
    """Every option, the table's default where ``keywords`` has none.

    An unknown name is the TypeError Python raises for a function's unknown
    keyword (connect() takes ``**keywords`` only so that the table stays the one
    definition), with the near name.
    """
    for name in keywords:
        if name not in BY_NAME:
            hint = _hint(name, list(BY_NAME))
            raise TypeError(
                f"{to}() got an unexpected keyword argument {name!r}"
                + (f"; {hint.strip()}" if hint else "")
            )
    every = {o.name: keywords.get(o.name, o.default) for o in CONNECT_OPTIONS}
    return cast("ConnectKeywords", every)


def shows_the_table(func: F) -> F:
    """``func(source, **keywords)`` shown to help(), notebooks and ``inspect`` with every
    option of the table as a keyword-only parameter, with its default."""
    source = next(iter(inspect.signature(func).parameters.values()))
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(o.name, keyword, default=o.default, annotation=o.annotation)
        for o in CONNECT_OPTIONS
    ]
    signature = inspect.signature(func).replace(parameters=[source, *params])
    func.__signature__ = signature  # type: ignore[attr-defined]
    return func


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
