"""``DecartClient``: the account's settings kept for repeated sessions and REST calls.

Like the official ``createDecartClient``: ``DecartClient(api_key=...).realtime``
opens sessions ([`connect()`][decart_sync.connect]) and viewers
([`subscribe()`][decart_sync.subscribe]) with the client's key, base URL and integration;
``.files`` ([`FilesClient`][decart_sync.rest.files.FilesClient]), ``.tokens``
([`TokensClient`][decart_sync.rest.tokens.TokensClient]), ``.process()`` for image
models (`rest.generate`) and ``.queue`` for video jobs (`rest.jobs`) call the
account's REST API at ``base_url``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import options
from ..models import ModelDefinition
from ..options import ConnectOptions, SubscribeOptions
from ..rest import generate
from ..rest.files import FilesClient
from ..rest.http import Account, rest_base_url
from ..rest.jobs import QueueClient
from ..rest.tokens import TokensClient
from ..rest.transfer import ProgressCallback
from .start import RealtimeClient, connect, subscribe

if TYPE_CHECKING:
    from typing_extensions import Unpack


class DecartClient:
    """Settings for repeated use, like the official ``createDecartClient``.

    ``base_url``: the REST API (default ``DECART_BASE_URL``, else
    ``https://api.decart.ai`` as the JS SDK); ``realtime_base_url``: the realtime
    service (default ``DECART_REALTIME_BASE_URL``, else ``wss://api3.decart.ai``).
    The local emulator has both: ``Emulator().rest_url`` and ``.url``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        realtime_base_url: str | None = None,
        integration: str | None = None,
        *,
        base_url: str | None = None,
    ) -> None:
        self._api_key = options.api_key(api_key)
        self.base_url = rest_base_url(base_url)
        self.realtime_base_url = options.base_url(realtime_base_url)
        self.integration = integration
        self.realtime = RealtimeSessions(self)
        self._account = account = Account(self.base_url, self._api_key, integration)
        self.files = FilesClient(account)
        self.tokens = TokensClient(account)
        self.queue = QueueClient(account)

    def process(
        self,
        *,
        model: ModelDefinition | str,
        data: Any,
        prompt: str | None = None,
        reference_image: Any = None,
        seed: int | None = None,
        resolution: str | None = None,
        enhance_prompt: bool | None = None,
        timeout: float = generate.PROCESS_TIMEOUT,
        progress: ProgressCallback | None = None,
    ) -> bytes:
        """An image model's edit of ``data``: the new picture's bytes.

        ``model``: a name (``"lucy-image-2"``) or ``models.image(...)``; ``data`` and
        ``reference_image``: a path, bytes, a binary file object or a numpy
        ``(height, width, 3)`` uint8 RGB picture. Inputs are checked before
        anything is sent (``INVALID_INPUT``); a failure at the service is
        ``PROCESSING_ERROR`` with the HTTP status in ``data["status"]``.
        ``timeout`` bounds the whole call; ``progress`` receives a
        `Progress` as the bytes move.
        """
        fields = {
            "data": data,
            "prompt": prompt,
            "reference_image": reference_image,
            "seed": seed,
            "resolution": resolution,
            "enhance_prompt": enhance_prompt,
        }
        return generate.process(self._account, model, fields, timeout=timeout, progress=progress)

    def __repr__(self) -> str:
        return (
            f"<DecartClient base_url={self.base_url!r} "
            f"realtime_base_url={self.realtime_base_url!r} api_key=***>"
        )


class RealtimeSessions:
    """``DecartClient(...).realtime``: sessions opened with the client's settings."""

    def __init__(self, owner: DecartClient) -> None:
        self._owner = owner

    def connect(self, source: Any = None, **kwargs: Unpack[ConnectOptions]) -> RealtimeClient:
        owner = self._owner
        options.forwarded(dict(kwargs), "DecartClient.realtime.connect", account=False)
        return connect(
            source,
            api_key=owner._api_key,
            base_url=owner.realtime_base_url,
            integration=owner.integration,
            **kwargs,
        )

    def subscribe(self, token: str, **kwargs: Unpack[SubscribeOptions]) -> RealtimeClient:
        owner = self._owner
        return subscribe(
            token,
            api_key=owner._api_key,
            base_url=owner.realtime_base_url,
            integration=owner.integration,
            **kwargs,
        )
