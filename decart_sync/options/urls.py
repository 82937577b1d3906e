"""The URLs of docs/protocol.md, "Endpoints", built from checked options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from .._version import __version__
from ..errors import InvalidOptionsError
from ..models import ModelDefinition
from ..realtime.subscribe_tokens import SubscribeToken

RESOLUTIONS = ("720p", "1080p")
SPEEDS = ("fast",)


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


def subscribe_url(base: str, token: SubscribeToken, key: str, integration: str | None) -> str:
    query = {"IP": token.ip, "port": token.port, "api_key": key}
    query["user_agent"] = user_agent(integration)
    return f"{base}/subscribe/{quote(token.sid)}?{urlencode(query, quote_via=quote)}"
