"""``DecartClient(...).files``: upload an image once, then use its ``file_...`` id anywhere.

As the JS SDK 0.1.20's files client: ``POST {base}/v1/files`` (multipart, the
file in field ``file``, an optional ``ttl_seconds`` field), ``GET`` and
``DELETE {base}/v1/files/{id}``; a TTL is an integer in [60, 720 h] or
``"persistent"``, omitted for the service's default (24 h). Any image
argument (``set_image``, ``set``, ``initial_state``, the CLI's ``--image``,
the ROS node's ``image`` parameter) that is a ``"file_..."`` id travels as
``image_ref`` instead of the image's bytes ([`is_file_ref()`][decart_sync.rest.files.is_file_ref]).
"""

from __future__ import annotations

import io
import mimetypes
import os
from typing import Any, BinaryIO
from urllib.parse import quote

import attrs

from ..errors import FilesError, InvalidInputError
from ..realtime.images import is_file_ref
from ..realtime.messages import FILE_REF_PREFIX
from .http import DEFAULT_TIMEOUT, Account, json_object

__all__ = ["FILE_REF_PREFIX", "FileReference", "FilesClient", "check_ttl", "is_file_ref"]

MAX_TTL_SECONDS = 720 * 60 * 60
MIN_TTL_SECONDS = 60


@attrs.frozen
class FileReference:
    """An uploaded file (the JS SDK's ``FileReference``); pass ``.id`` as an image.

    ``expires_at`` is None for a persistent file; times are the service's ISO 8601 text.
    """

    id: str
    filename: str | None
    mime_type: str
    size_bytes: int
    created_at: str
    expires_at: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any], code: str, what: str) -> FileReference:
        try:
            file_id = body["id"]
            if not isinstance(file_id, str) or not file_id:
                raise TypeError("id")
            return cls(
                id=file_id,
                filename=body.get("filename"),
                mime_type=str(body.get("mime_type") or ""),
                size_bytes=int(body.get("size_bytes") or 0),
                created_at=str(body.get("created_at") or ""),
                expires_at=body.get("expires_at"),
            )
        except (KeyError, TypeError, ValueError):
            raise FilesError(
                f"could not {what}: the service's answer is not a file reference", code=code
            ) from None


def check_ttl(ttl_seconds: Any) -> str | None:
    """The ``ttl_seconds`` form field, or None to leave the service's default."""
    if ttl_seconds is None:
        return None
    if ttl_seconds == "persistent":
        return "persistent"
    if (
        isinstance(ttl_seconds, bool)
        or not isinstance(ttl_seconds, int)
        or not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS
    ):
        raise InvalidInputError(
            f"ttl_seconds must be an integer in [{MIN_TTL_SECONDS}, {MAX_TTL_SECONDS}] "
            f'or the literal "persistent", got {ttl_seconds!r}'
        )
    return str(ttl_seconds)


def _upload_part(file: Any) -> tuple[str, BinaryIO | bytes, str]:
    """``(filename, content, mime type)`` for the multipart ``file`` field."""
    if isinstance(file, bytes | bytearray | memoryview):
        data = bytes(file)
        return "upload", data, _sniff(data)
    if isinstance(file, str | os.PathLike):
        path = os.fspath(file)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path!r}: {exc}", cause=exc) from None
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return os.path.basename(path), data, mime
    read = getattr(file, "read", None)
    if callable(read):
        try:
            data = read()
        except OSError as exc:
            raise InvalidInputError(f"cannot read the file object: {exc}", cause=exc) from None
        if not isinstance(data, bytes):
            raise InvalidInputError("the file object must be opened in binary mode ('rb')")
        name = os.path.basename(str(getattr(file, "name", "") or "upload"))
        return name, io.BytesIO(data), mimetypes.guess_type(name)[0] or _sniff(data)
    raise InvalidInputError(
        f"upload() takes a file path, bytes or a binary file object, got {type(file).__name__}"
    )


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def _sniff(data: bytes) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


class FilesClient:
    """``DecartClient(...).files``: blocking calls, each bounded by its ``timeout``."""

    def __init__(self, account: Account) -> None:
        self._account = account

    def upload(
        self, file: Any, *, ttl_seconds: int | str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> FileReference:
        """Upload ``file`` (a path, bytes or a binary file object); its reference.

        ``ttl_seconds``: seconds in [60, 2 592 000] (720 h), ``"persistent"`` for a
        file that never expires, None for the service's default (24 h).
        """
        ttl = check_ttl(ttl_seconds)
        name, content, mime = _upload_part(file)
        data = {} if ttl is None else {"ttl_seconds": ttl}
        what = "upload the file"
        response = self._account.request(
            "POST",
            "/v1/files",
            error=_error("FILES_UPLOAD_ERROR"),
            what=what,
            timeout=timeout,
            files={"file": (name, content, mime)},
            data=data,
        )
        body = json_object(response, _error("FILES_UPLOAD_ERROR"), what)
        return FileReference.from_json(body, "FILES_UPLOAD_ERROR", what)

    def get(self, file_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> FileReference:
        """The reference of an uploaded file (``FILES_GET_ERROR``: unknown or expired)."""
        what = f"get file {file_id!r}"
        response = self._account.request(
            "GET", _path(file_id), error=_error("FILES_GET_ERROR"), what=what, timeout=timeout
        )
        body = json_object(response, _error("FILES_GET_ERROR"), what)
        return FileReference.from_json(body, "FILES_GET_ERROR", what)

    def delete(self, file_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete an uploaded file; later uses of its id fail."""
        self._account.request(
            "DELETE",
            _path(file_id),
            error=_error("FILES_DELETE_ERROR"),
            what=f"delete file {file_id!r}",
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"<FilesClient {self._account.base_url}>"


def _path(file_id: Any) -> str:
    if not isinstance(file_id, str) or not file_id:
        raise InvalidInputError(f"a file id must be a non-empty string, got {file_id!r}")
    return f"/v1/files/{quote(file_id, safe='')}"


def _error(code: str) -> Any:
    def make(message: str, *, data: Any = None) -> FilesError:
        return FilesError(message, data=data, code=code)

    return make
