"""Where a script's sessions go: Decart's service with a key, else a local emulator.

The examples, classroom scripts and tests of user code run the same with or
without an account: ``connect(..., **service(stack))``, or for the REST API
too (files, client tokens) ``client(stack)``, a ready [`DecartClient`][decart_sync.DecartClient].
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .models import ModelDefinition

if TYPE_CHECKING:
    from .client.account import DecartClient

EMULATOR_KEY = "local-emulator"


def service(
    stack: contextlib.ExitStack, *, models: Iterable[ModelDefinition] = ()
) -> dict[str, str]:
    """``connect()`` keywords for where to stream.

    With ``DECART_API_KEY`` set: none (the service, at ``DECART_REALTIME_BASE_URL``
    if that is set). Without: the emulator ``DECART_REALTIME_BASE_URL`` names, or
    one started here, serving ``models`` too, and closed with ``stack`` (it needs
    the emulator extra).
    """
    if os.environ.get("DECART_API_KEY"):
        return {}
    url, _ = _emulator(stack, models)
    return {"base_url": url, "api_key": EMULATOR_KEY}


def client(stack: contextlib.ExitStack, *, models: Iterable[ModelDefinition] = ()) -> DecartClient:
    """A [`DecartClient`][decart_sync.DecartClient] for the same place
    [`service()`][decart_sync.local.service] picks, REST API included.

    Without ``DECART_API_KEY``: the emulator at ``DECART_REALTIME_BASE_URL`` and
    ``DECART_BASE_URL`` (its REST URL), or one started here and closed with ``stack``.
    """
    from .client.account import DecartClient

    if os.environ.get("DECART_API_KEY"):
        return DecartClient()
    url, rest_url = _emulator(stack, models)
    return DecartClient(api_key=EMULATOR_KEY, base_url=rest_url, realtime_base_url=url)


def _emulator(
    stack: contextlib.ExitStack, models: Iterable[ModelDefinition]
) -> tuple[str, str | None]:
    """A running emulator's realtime and REST URLs (REST None: from the environment, unset)."""
    url = os.environ.get("DECART_REALTIME_BASE_URL")
    if url:
        return url, os.environ.get("DECART_BASE_URL")
    from .emulator import Emulator

    emulator = stack.enter_context(Emulator(models=list(models)))
    return emulator.url, emulator.rest_url
