"""Model definitions: realtime (docs/protocol.md, "Two media paths"), image and video.

Two generations live here. Today's models, as the official ``decart`` 0.2.4
release lists them (``lucy-2.1``, ``lucy-2.5``, ... at 30 fps), travel over
LiveKit. The classic models (``mirage``, ``mirage_v2``, ``lucy_v2v_720p_rt``,
``lucy_2_rt``, ``live_avatar`` and their aliases) travel over plain WebRTC;
their snake_case names warn once that they are deprecated.

``models.realtime("lucy-2.1")`` looks a model up by name; ``models.realtime.mirage()``
and friends mirror the official SDKs' factories. The name is sent to the server as
given. A custom [`ModelDefinition`][decart_sync.ModelDefinition] takes the WebRTC path
unless it says
``transport="livekit"``.

The batch models, as decart 0.2.4 lists them: ``models.image(name)`` for
``DecartClient.process`` (``POST /v1/generate/<name>``) and ``models.video(name)``
for ``DecartClient.queue`` (``POST /v1/jobs/<name>``). Their definitions name the
inputs they take (``inputs``: ``"image"``, ``"video"`` or ``"restyle"``, checked
by `decart_sync.rest.inputs` before anything is sent).
"""

from __future__ import annotations

import re
import warnings

import attrs

from .errors import InvalidOptionsError, ModelNotFoundError

STREAM_PATH = "/v1/stream"
TRANSPORTS = ("webrtc", "livekit")
GENERATE_PATH = "/v1/generate/"
JOBS_PATH = "/v1/jobs/"
#: what a batch model takes: an image edit, a video edit (prompt required, may be
#: empty), a restyle (a prompt or a reference image, not both)
INPUT_KINDS = ("image", "video", "restyle")


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


def _inputs(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None and value not in INPUT_KINDS:
        raise InvalidOptionsError(
            f"ModelDefinition.inputs must be None or one of {', '.join(INPUT_KINDS)}, got {value!r}"
        )


@attrs.frozen
class ModelDefinition:
    """A model: where to reach it, what frames it takes and gives, and how.

    ``transport`` is the media path a realtime session takes by default:
    ``"webrtc"`` (the classic models') or ``"livekit"`` (today's models). ``inputs``
    is None for a realtime model; an image or video model's says which fields it
    takes (`INPUT_KINDS`).
    """

    name: str = attrs.field(validator=_name)
    url_path: str = attrs.field(default=STREAM_PATH, validator=_url_path)
    fps: float = attrs.field(default=25, validator=_positive)
    width: int = attrs.field(default=1280, validator=_even_size)
    height: int = attrs.field(default=704, validator=_even_size)
    transport: str = attrs.field(default="webrtc", validator=_transport, kw_only=True)
    speeds: tuple[str, ...] = attrs.field(default=(), kw_only=True)  # e.g. ("fast",)
    inputs: str | None = attrs.field(default=None, validator=_inputs, kw_only=True)

    @property
    def is_avatar(self) -> bool:
        """True for models driven by audio instead of camera video."""
        return self.name in ("live_avatar", "live-avatar")


_CLASSIC = {
    # classic name: (canonical alias, fps, width, height); plain WebRTC
    "mirage": ("lucy-restyle", 25, 1280, 704),
    "mirage_v2": ("lucy-restyle-2", 22, 1280, 704),
    "lucy_v2v_720p_rt": ("lucy", 25, 1280, 704),
    "lucy_2_rt": (None, 20, 1280, 720),
    "live_avatar": ("live-avatar", 25, 1280, 720),
}
# Names official plain-WebRTC clients sent later, at the sizes that path served them.
_CLASSIC_LATER = {
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

#: the plain-WebRTC definitions of names whose definition differs over LiveKit (the emulator
#: serves these to a client that offers plain WebRTC for them)
CLASSIC_GENERATION: dict[str, ModelDefinition] = {}
REGISTRY: dict[str, ModelDefinition] = {}
for _classic_name, (_alias, _fps, _w, _h) in _CLASSIC.items():
    REGISTRY[_classic_name] = ModelDefinition(_classic_name, STREAM_PATH, _fps, _w, _h)
    if _alias:
        CLASSIC_GENERATION[_alias] = ModelDefinition(_alias, STREAM_PATH, _fps, _w, _h)
for _later, (_fps, _w, _h) in _CLASSIC_LATER.items():
    CLASSIC_GENERATION[_later] = ModelDefinition(_later, STREAM_PATH, _fps, _w, _h)
REGISTRY.update(CLASSIC_GENERATION)
for _current, (_fps, _w, _h, _speeds) in _TODAY.items():
    REGISTRY[_current] = ModelDefinition(
        _current, STREAM_PATH, _fps, _w, _h, transport="livekit", speeds=_speeds
    )
for _changed in [n for n, m in CLASSIC_GENERATION.items() if REGISTRY[n] == m]:
    del CLASSIC_GENERATION[_changed]  # the same on both paths: only the registry's

# Classic names the official SDKs deprecate in favour of their canonical alias.
DEPRECATED = {name: alias for name, (alias, *_rest) in _CLASSIC.items() if alias}
_warned: set[str] = set()


def _warn_if_deprecated(name: str) -> None:
    """Once per name, as the official SDKs do; the warning points at the caller's caller."""
    alias = DEPRECATED.get(name)
    if alias and name not in _warned:
        _warned.add(name)
        warnings.warn(
            f"model name {name!r} is deprecated; use {alias!r}", DeprecationWarning, stacklevel=3
        )


class RealtimeModels:
    """``models.realtime(name)``, plus one factory per classic model."""

    def __call__(self, name: str) -> ModelDefinition:
        try:
            model = REGISTRY[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(REGISTRY))
            raise ModelNotFoundError(
                f"unknown realtime model {name!r}; known models: {known}"
            ) from None
        _warn_if_deprecated(name)
        return model

    def names(self) -> list[str]:
        return sorted(REGISTRY)

    # The official SDKs' factories: no deprecation warning, they are the documented API.
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

    # The JS SDK's camelCase spellings, for people porting JS code.
    mirageV2 = mirage_v2
    lucyV2V720pRt = lucy_v2v_720p_rt
    lucy2Rt = lucy_2_rt
    liveAvatar = live_avatar


realtime = RealtimeModels()


def resolve(model: ModelDefinition | str) -> ModelDefinition:
    """Accept a definition or a registry name (a realtime model's)."""
    if isinstance(model, ModelDefinition):
        if model.inputs is not None:
            raise InvalidOptionsError(
                f"{model.name} at {model.url_path} is an image or video model, not a realtime "
                f"one: use DecartClient.process() or DecartClient.queue"
            )
        return model
    if isinstance(model, str):
        return realtime(model)
    raise InvalidOptionsError(
        f"model must be a ModelDefinition (e.g. models.realtime.mirage()) or a name, "
        f"got {type(model).__name__}"
    )


# The batch models of decart 0.2.4: name -> (fps, width, height, inputs, canonical if deprecated)
_IMAGE = {
    "lucy-image-2": (25, 1280, 704, "image", None),
    "lucy-image-latest": (25, 1280, 704, "image", None),
    "lucy-pro-i2i": (25, 1280, 704, "image", "lucy-image-2"),
}
_VIDEO = {
    "lucy-2.1": (20, 1280, 720, "video", None),
    "lucy-2.5": (20, 1280, 720, "video", None),
    "lucy-2.6": (20, 1280, 720, "video", None),
    "lucy-vton-3.5": (20, 1280, 720, "video", None),
    "lucy-vton-3.6": (20, 1280, 720, "video", None),
    "lucy-restyle-2": (22, 1280, 704, "restyle", None),
    "lucy-latest": (20, 1280, 720, "video", None),
    "lucy-vton-latest": (20, 1280, 720, "video", None),
    "lucy-restyle-latest": (22, 1280, 704, "restyle", None),
    "lucy-restyle-v2v": (22, 1280, 704, "restyle", "lucy-restyle-2"),
}
IMAGE_MODELS: dict[str, ModelDefinition] = {
    name: ModelDefinition(name, GENERATE_PATH + name, fps, w, h, inputs=kind)
    for name, (fps, w, h, kind, _) in _IMAGE.items()
}
VIDEO_MODELS: dict[str, ModelDefinition] = {
    name: ModelDefinition(name, JOBS_PATH + name, fps, w, h, inputs=kind)
    for name, (fps, w, h, kind, _) in _VIDEO.items()
}
DEPRECATED.update({n: spec[4] for n, spec in (_IMAGE | _VIDEO).items() if spec[4]})


class _BatchModels:
    """``models.image(name)`` / ``models.video(name)``: a definition of the official table."""

    def __init__(self, kind: str, table: dict[str, ModelDefinition], use: str) -> None:
        self._kind, self._table, self._use = kind, table, use

    def __call__(self, name: str) -> ModelDefinition:
        model = self._table.get(name) if isinstance(name, str) else None
        if model is None:
            other = "a video" if self._kind == "image" else "an image"
            others = VIDEO_MODELS if self._kind == "image" else IMAGE_MODELS
            hint = f"; {name!r} is {other} model" if name in others else ""
            raise ModelNotFoundError(
                f"unknown {self._kind} model {name!r}{hint}; {self._kind} models "
                f"({self._use}): {', '.join(self.names())}"
            )
        _warn_if_deprecated(name)
        return model

    def names(self) -> list[str]:
        return sorted(self._table)


image = _BatchModels("image", IMAGE_MODELS, "DecartClient.process")
video = _BatchModels("video", VIDEO_MODELS, "DecartClient.queue")


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
    """``model`` as `parse` reads it back (the emulator's ``--model`` form)."""
    text = f"{model.name}:{model.fps:g}:{model.width}x{model.height}"
    return text if model.transport == "webrtc" else f"{text}:{model.transport}"
