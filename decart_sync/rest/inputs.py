"""What an image or video model is given: checked, then read, before anything is sent.

The fields and their rules are decart 0.2.4's input models, by the definition's
``inputs`` (`decart_sync.models.INPUT_KINDS`):

- ``"image"`` (``lucy-image-2``): ``prompt`` 1-1000 characters, ``data`` a picture;
- ``"video"`` (``lucy-2.1`` ...): ``prompt`` up to 1000 characters, may be empty;
  ``data`` a video;
- ``"restyle"`` (``lucy-restyle-2``): a ``prompt`` or a ``reference_image``, not
  both; ``enhance_prompt`` only with a prompt.

All take ``reference_image``, ``seed`` (an integer), ``resolution`` (text such
as ``"720p"``) and ``enhance_prompt`` (a bool), each optional. A field not in
that list, a missing ``data`` or a file that is not a picture (or a video) is
``INVALID_INPUT`` here, before any byte is uploaded. A picture may be a path,
bytes, a binary file object or a numpy ``(height, width, 3)`` uint8 RGB array
(sent as PNG); a video a path, bytes or a binary file object.
"""

from __future__ import annotations

import io
import mimetypes
import numbers
import os
from collections.abc import Mapping
from typing import Any

import attrs
import av
import numpy as np

from ..errors import InvalidInputError, InvalidOptionsError
from ..models import ModelDefinition
from ..realtime import images

FILE_FIELDS = ("data", "reference_image")
TEXT_FIELDS = ("prompt", "seed", "resolution", "enhance_prompt")
MAX_PROMPT = 1000
# FFmpeg's demuxers of single pictures: a still is not a video.
_STILL_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe")
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"GIF8", "image/gif", ".gif"),
    (b"BM", "image/bmp", ".bmp"),
)


@attrs.frozen
class Part:
    """A file of the multipart form."""

    field: str
    filename: str
    content: bytes = attrs.field(repr=lambda c: f"<{len(c)} bytes>")
    mime: str


@attrs.frozen
class Form:
    """The checked form: text fields as the wire has them, files read."""

    fields: dict[str, str]
    files: tuple[Part, ...]

    def multipart(self) -> list[tuple[str, Any]]:
        """Fields for ``urllib3.encode_multipart_formdata``: text, then files."""
        items: list[tuple[str, Any]] = list(self.fields.items())
        items += [(p.field, (p.filename, p.content, p.mime)) for p in self.files]
        return items


def kind_of(model: ModelDefinition, wanted: tuple[str, ...], call: str) -> str:
    """The definition's input kind, which ``call`` must accept."""
    if not isinstance(model, ModelDefinition):
        raise InvalidOptionsError(
            f"model must be a name or a ModelDefinition, got {type(model).__name__}"
        )
    if model.inputs not in wanted:
        raise InvalidOptionsError(
            f"{call} takes {' or '.join(wanted)} models; {model.name} "
            f"({model.inputs or 'realtime'}, {model.url_path}) is not one"
        )
    return model.inputs


def check(model: ModelDefinition, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs that are set, checked against the model's rules (``INVALID_INPUT``)."""
    kind = model.inputs
    given = {k: v for k, v in inputs.items() if v is not None}
    unknown = sorted(set(given) - set(FILE_FIELDS) - set(TEXT_FIELDS))
    if unknown:
        raise InvalidInputError(
            f"{model.name} takes {', '.join(FILE_FIELDS + TEXT_FIELDS)}; not {', '.join(unknown)}"
        )
    if "data" not in given:
        raise InvalidInputError(f"{model.name} needs data: the {_media(kind)} to edit")
    prompt = given.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be text, got {type(prompt).__name__}")
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise InvalidInputError(f"prompt is {len(prompt)} characters; at most {MAX_PROMPT}")
    if kind == "restyle":
        if (prompt is None) == ("reference_image" not in given):
            raise InvalidInputError(
                f"{model.name} takes a prompt or a reference_image, not both and not neither"
            )
        if "reference_image" in given and "enhance_prompt" in given:
            raise InvalidInputError("enhance_prompt goes with a prompt, not a reference_image")
    elif prompt is None:
        raise InvalidInputError(
            f"{model.name} needs a prompt" + (" ('' for none)" if kind == "video" else "")
        )
    if prompt == "" and kind != "video":
        raise InvalidInputError(f"{model.name} needs a prompt of at least one character")
    seed = given.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise InvalidInputError(f"seed must be an integer, got {seed!r}")
    resolution = given.get("resolution")
    if resolution is not None and (not isinstance(resolution, str) or not resolution.strip()):
        raise InvalidInputError(f"resolution must be text such as '720p', got {resolution!r}")
    enhance = given.get("enhance_prompt")
    if enhance is not None and not isinstance(enhance, bool | np.bool_):
        raise InvalidInputError(f"enhance_prompt must be True or False, got {enhance!r}")
    return given


def build(model: ModelDefinition, inputs: Mapping[str, Any]) -> Form:
    """Checked inputs, files read and verified: the form to send."""
    given = check(model, inputs)
    fields: dict[str, str] = {}
    for name in TEXT_FIELDS:
        value = given.get(name)
        if isinstance(value, bool | np.bool_):
            fields[name] = "true" if value else "false"
        elif isinstance(value, numbers.Integral):
            fields[name] = str(int(value))
        elif value is not None:
            fields[name] = value
    files = [read_part("data", given["data"], video=model.inputs != "image")]
    if "reference_image" in given:
        files.append(read_part("reference_image", given["reference_image"], video=False))
    return Form(fields, tuple(files))


def read_part(field: str, value: Any, *, video: bool) -> Part:
    """One file of the form: read, and checked to be a picture (or a video)."""
    if isinstance(value, np.ndarray):
        if video:
            raise InvalidInputError(f"{field} must be a video file, path or bytes, not an array")
        try:
            return Part(field, f"{field}.png", images.encode_png(value), "image/png")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{field}: {exc.message}") from None
    name, content = _read(field, value)
    if not content:
        raise InvalidInputError(f"{field} is empty")
    if video:
        _check_video(field, content)
    else:
        _check_picture(field, content)
    mime, ext = _sniff(content, video)
    guessed = mimetypes.guess_type(name)[0] if name else None
    return Part(field, name or f"{field}{ext}", content, guessed or mime)


def _read(field: str, value: Any) -> tuple[str | None, bytes]:
    if isinstance(value, bytes | bytearray | memoryview):
        return None, bytes(value)
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        try:
            with open(path, "rb") as f:
                return os.path.basename(path), f.read()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {field} {path!r}: {exc}", cause=exc) from None
    read = getattr(value, "read", None)
    if callable(read):
        try:
            content = read()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {field}: {exc}", cause=exc) from None
        if not isinstance(content, bytes):
            raise InvalidInputError(f"{field}: the file object must be opened in binary mode")
        name = getattr(value, "name", None)
        return (os.path.basename(name) if isinstance(name, str) else None), content
    raise InvalidInputError(
        f"{field} must be a path, bytes, a binary file object or a numpy picture, "
        f"got {type(value).__name__}"
    )


def _check_picture(field: str, content: bytes) -> None:
    try:
        images.decode(content)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{field} is not a picture: {exc.message}") from None


def _check_video(field: str, content: bytes) -> None:
    try:
        with av.open(io.BytesIO(content)) as container:
            streams, still = container.streams.video, container.format.name in _STILL_FORMATS
            frame = next(container.decode(video=0), None) if streams and not still else None
    except (av.FFmpegError, ValueError) as exc:
        raise InvalidInputError(f"{field} is not a video FFmpeg can read ({exc})") from None
    if still:
        raise InvalidInputError(
            f"{field} is a still picture; a video model takes a video (mp4, mov, ...)"
        )
    if frame is None:
        raise InvalidInputError(f"{field} holds no video frame")


def _sniff(content: bytes, video: bool) -> tuple[str, str]:
    for magic, mime, ext in _MAGIC:
        if content.startswith(magic):
            return mime, ext
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp", ".webp"
    if content[4:8] == b"ftyp":
        return ("video/quicktime", ".mov") if content[8:10] == b"qt" else ("video/mp4", ".mp4")
    if content.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/x-matroska", ".mkv"
    return "application/octet-stream", ".mp4" if video else ".bin"


def _media(kind: str | None) -> str:
    return "picture" if kind == "image" else "video"
