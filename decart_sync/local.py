"""Where a script's sessions go: Decart's service with a key, else a local emulator.

The examples, classroom scripts and tests of user code run the same with or
without an account: ``connect(..., **service(stack))``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from .models import ModelDefinition


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
    url = os.environ.get("DECART_REALTIME_BASE_URL")
    if not url:
        from .emulator import Emulator

        url = stack.enter_context(Emulator(models=list(models))).url
    return {"base_url": url, "api_key": "local-emulator"}
