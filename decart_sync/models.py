"""Realtime model definitions (PROTOCOL.md sections 2 and 11).

Two generations live here. Today's models, as the official ``decart`` 0.2.4
release lists them (``lucy-2.1``, ``lucy-2.5``, ... at 30 fps), travel over
LiveKit. The seed's models (``mirage``, ``mirage_v2``, ``lucy_v2v_720p_rt``,
``lucy_2_rt``, ``live_avatar`` and their aliases) keep the seed's plain
WebRTC path; the seed's snake_case names warn once that they are deprecated.

``models.realtime("lucy-2.1")`` looks a model up by name; ``models.realtime.mirage()``
and friends mirror the seed's factories. The name is sent to the server as
given. A custom :class:`ModelDefinition` takes the WebRTC path unless it says
``transport="livekit"``.
"""

from __future__ import annotations

import re
import warnings

import attrs

from .errors import InvalidOptionsError, ModelNotFoundError

STREAM_PATH = "/v1/stream"
TRANSPORTS = ("webrtc", "livekit")


def _positive(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidOptionsError(
            f"ModelDefinition.{attribute.name} must be a positive number, got {value!r}"
        )


def _even_size(instance: object, attribute: attrs.Attribute, value: object) -> None:
    _positive(instance, attribute, value)
    if not isinstance(value, int) or value % 2 or value > 4096:
        raise InvalidOptionsError(
            f"ModelDefinition.{attribute.name} must be an even integer up to 4096 "
            f"(VP8 uses 4:2:0 chroma), got {value!r}"
        )


def _name(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", value):
        raise InvalidOptionsError(
            f"ModelDefinition.name must be a non-empty model name such as 'mirage', got {value!r}"
        )


def _url_path(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in "?# "):
        raise InvalidOptionsError(
            f"ModelDefinition.url_path must be a path such as '/v1/stream', got {value!r}"
        )


def _transport(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value not in TRANSPORTS:
        raise InvalidOptionsError(
            f"ModelDefinition.transport must be one of {', '.join(TRANSPORTS)}, got {value!r}"
        )


@attrs.frozen
class ModelDefinition:
    """A realtime model: where to connect, what frames it takes and gives, and how.

    ``transport`` is the media path a session takes by default: ``"webrtc"``
    (the seed's) or ``"livekit"`` (today's service).
    """

    name: str = attrs.field(validator=_name)
    url_path: str = attrs.field(default=STREAM_PATH, validator=_url_path)
    fps: float = attrs.field(default=25, validator=_positive)
    width: int = attrs.field(default=1280, validator=_even_size)
    height: int = attrs.field(default=704, validator=_even_size)
    transport: str = attrs.field(default="webrtc", validator=_transport, kw_only=True)
    speeds: tuple[str, ...] = attrs.field(default=(), kw_only=True)  # e.g. ("fast",)

    @property
    def is_avatar(self) -> bool:
        """True for models driven by audio instead of camera video."""
        return self.name in ("live_avatar", "live-avatar")


_SEED = {
    # seed name: (canonical alias, fps, width, height); plain WebRTC
    "mirage": ("lucy-restyle", 25, 1280, 704),
    "mirage_v2": ("lucy-restyle-2", 22, 1280, 704),
    "lucy_v2v_720p_rt": ("lucy", 25, 1280, 704),
    "lucy_2_rt": (None, 20, 1280, 720),
    "live_avatar": ("live-avatar", 25, 1280, 720),
}
# Names official clients of the seed's protocol sent later, at their sizes of then.
_SEED_LATER = {
    "lucy-2.1": (20, 1088, 624),
    "lucy-2.1-vton": (20, 1088, 624),
    "lucy-latest": (20, 1088, 624),
    "lucy-vton-latest": (20, 1088, 624),
    "lucy-restyle-latest": (22, 1280, 704),
}
# Today's realtime models, as in the official decart 0.2.4 release: (fps, width, height, speeds).
_TODAY = {
    "lucy-2.1": (30, 1280, 720, ()),
    "lucy-2.5": (30, 1280, 720, ("fast",)),
    "lucy-2.6": (30, 1280, 720, ("fast",)),
    "lucy-vton-3.5": (30, 1280, 720, ("fast",)),
    "lucy-vton-3.6": (30, 1280, 720, ("fast",)),
    "lucy-restyle-2": (30, 1280, 704, ()),
    "lucy-latest": (30, 1280, 720, ("fast",)),
    "lucy-vton-latest": (30, 1280, 720, ("fast",)),
    "lucy-restyle-latest": (30, 1280, 704, ()),
}

#: the seed generation's definitions, for the names whose definition has changed since
SEED_GENERATION: dict[str, ModelDefinition] = {}
REGISTRY: dict[str, ModelDefinition] = {}
for _seed_name, (_alias, _fps, _w, _h) in _SEED.items():
    REGISTRY[_seed_name] = ModelDefinition(_seed_name, STREAM_PATH, _fps, _w, _h)
    if _alias:
        SEED_GENERATION[_alias] = ModelDefinition(_alias, STREAM_PATH, _fps, _w, _h)
for _later, (_fps, _w, _h) in _SEED_LATER.items():
    SEED_GENERATION[_later] = ModelDefinition(_later, STREAM_PATH, _fps, _w, _h)
REGISTRY.update(SEED_GENERATION)
for _current, (_fps, _w, _h, _speeds) in _TODAY.items():
    REGISTRY[_current] = ModelDefinition(
        _current, STREAM_PATH, _fps, _w, _h, transport="livekit", speeds=_speeds
    )
for _changed in [n for n, m in SEED_GENERATION.items() if REGISTRY[n] == m]:
    del SEED_GENERATION[_changed]  # unchanged since: only the registry's

# Seed names the official SDKs deprecate in favour of their canonical alias.
DEPRECATED = {name: alias for name, (alias, *_rest) in _SEED.items() if alias}
_warned: set[str] = set()


class RealtimeModels:
    """``models.realtime(name)``, plus one factory per seed model."""

    def __call__(self, name: str) -> ModelDefinition:
        try:
            model = REGISTRY[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(REGISTRY))
            raise ModelNotFoundError(
                f"unknown realtime model {name!r}; known models: {known}"
            ) from None
        alias = DEPRECATED.get(name)
        if alias and name not in _warned:
            _warned.add(name)
            warnings.warn(
                f"model name {name!r} is deprecated; use {alias!r}",
                DeprecationWarning,
                stacklevel=2,
            )
        return model

    def names(self) -> list[str]:
        return sorted(REGISTRY)

    # The seed's factories: no deprecation warning, they are the documented API.
    def mirage(self) -> ModelDefinition:
        return REGISTRY["mirage"]

    def mirage_v2(self) -> ModelDefinition:
        return REGISTRY["mirage_v2"]

    def lucy_v2v_720p_rt(self) -> ModelDefinition:
        return REGISTRY["lucy_v2v_720p_rt"]

    def lucy_2_rt(self) -> ModelDefinition:
        return REGISTRY["lucy_2_rt"]

    def live_avatar(self) -> ModelDefinition:
        return REGISTRY["live_avatar"]

    # camelCase spellings of the seed, for people porting JS code.
    mirageV2 = mirage_v2
    lucyV2V720pRt = lucy_v2v_720p_rt
    lucy2Rt = lucy_2_rt
    liveAvatar = live_avatar


realtime = RealtimeModels()


def resolve(model: ModelDefinition | str) -> ModelDefinition:
    """Accept a definition or a registry name."""
    if isinstance(model, ModelDefinition):
        return model
    if isinstance(model, str):
        return realtime(model)
    raise InvalidOptionsError(
        f"model must be a ModelDefinition (e.g. models.realtime.mirage()) or a name, "
        f"got {type(model).__name__}"
    )


def parse(text: str, *, names: bool = True) -> ModelDefinition:
    """A custom model written ``NAME:FPS:WIDTHxHEIGHT[:TRANSPORT]`` (transport ``webrtc``
    unless given), or with ``names`` a registry name; the one reading of a model on a
    command line (the emulator's ``--model``, the CLI's, the ROS node's parameter)."""
    text = text.strip()
    if names and ":" not in text:
        return realtime(text)
    form = "NAME:FPS:WIDTHxHEIGHT[:TRANSPORT]"
    try:
        name, fps, size, *rest = text.split(":")
        width, height = size.lower().split("x")
        if len(rest) > 1:
            raise ValueError("too many fields")
        transport = rest[0] if rest else "webrtc"
        return ModelDefinition(
            name, fps=float(fps), width=int(width), height=int(height), transport=transport
        )
    except InvalidOptionsError as exc:
        raise InvalidOptionsError(f"model {text!r}: {exc.message}") from None
    except ValueError:
        raise InvalidOptionsError(f"model {text!r} is not {form}") from None


def spec(model: ModelDefinition) -> str:
    """``model`` as :func:`parse` reads it back (the emulator's ``--model`` form)."""
    text = f"{model.name}:{model.fps:g}:{model.width}x{model.height}"
    return text if model.transport == "webrtc" else f"{text}:{model.transport}"
