"""The account's REST API (``https://api.decart.ai``): one blocking request, its errors.

What `rest.files` and `rest.tokens` share: the base URL, the auth
headers (``X-API-KEY`` and the ``User-Agent`` the control WebSocket names, as the JS SDK
0.1.20's ``buildAuthHeaders`` does), and the mapping of failures to codes: 401
and 403 are ``INVALID_API_KEY``; anything else that fails, a timeout or a
refused connection included, is the calling operation's own code
(``FILES_UPLOAD_ERROR``, ``TOKEN_CREATE_ERROR``, ...) with the HTTP status in
``data``. The key never appears in a message: only the URL, which holds none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import DecartSDKError, InvalidAPIKeyError, InvalidBaseURLError
from ..options import check_timeout, user_agent

DEFAULT_REST_BASE_URL = "https://api.decart.ai"  # the JS SDK 0.1.20's createDecartClient default
DEFAULT_TIMEOUT = 30.0

ErrorFactory = Callable[..., DecartSDKError]


def rest_base_url(url: str | None) -> str:
    """``url``, else ``DECART_BASE_URL``, else the service's: http(s) with a host, no ``/``."""
    url = url or os.environ.get("DECART_BASE_URL") or DEFAULT_REST_BASE_URL
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.hostname:
        raise InvalidBaseURLError(f"REST base URL {url!r} must be http:// or https:// with a host")
    return parts._replace(scheme=scheme).geturl().rstrip("/")


class Account:
    """Where and as whom requests go; ``repr`` hides the key."""

    def __init__(self, base_url: str, api_key: str, integration: str | None) -> None:
        self.base_url = base_url
        self._api_key = api_key
        self.integration = integration

    def headers(self) -> dict[str, str]:
        return {"X-API-KEY": self._api_key, "User-Agent": user_agent(self.integration)}

    def request(
        self,
        method: str,
        path: str,
        *,
        error: ErrorFactory,
        what: str,
        timeout: float,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """``method {base_url}{path}``, blocking for at most ``timeout`` seconds.

        ``what`` says the operation in messages ("upload the file"); ``error`` makes
        the operation's error from a message and ``data=``. ``headers`` add to ours.
        """
        url = f"{self.base_url}{path}"
        check_timeout(timeout)
        timeout = float(timeout)
        try:
            response = requests.request(
                method,
                url,
                headers={**self.headers(), **(headers or {})},
                timeout=timeout,
                **kwargs,
            )
        except requests.Timeout:
            raise error(
                f"could not {what}: {url} did not answer within {timeout} s",
                data={"status": None},
            ) from None
        except requests.RequestException as exc:
            raise error(
                f"could not {what}: {url} is unreachable ({type(exc).__name__})",
                data={"status": None},
            ) from None
        if response.status_code in (401, 403):
            raise InvalidAPIKeyError(
                f"could not {what}: the service refused the API key "
                f"({response.status_code}: {error_text(response)})",
                data={"status": response.status_code},
            )
        if not response.ok:
            raise error(
                f"could not {what}: {response.status_code} - {error_text(response)}",
                data={"status": response.status_code},
            )
        return response


def error_text(response: requests.Response) -> str:
    """The service's ``{"detail": ...}`` when it gives one, else the body (as the JS SDK)."""
    text = response.text[:500] or "Unknown error"
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return text
    return detail if isinstance(detail, str) and detail else text


def json_object(response: requests.Response, error: ErrorFactory, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise error(
            f"could not {what}: the service's answer is not a JSON object",
            data={"status": response.status_code},
        )
    return body
