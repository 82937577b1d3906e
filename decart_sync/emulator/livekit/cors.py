"""Browsers' cross-origin rules, answered as a LiveKit server answers them.

livekit-server puts rs/cors in front of every route (``pkg/service/server.go``:
any origin, methods OPTIONS HEAD GET POST PATCH DELETE, any header, every
header exposed, preflights cached a day; tokens, not origins, guard it), so a
page on any origin may read ``/rtc/v1/validate``: livekit-client reads its
status and text to tell a refused token or an unknown room from an absent v1
path (then it falls back to ``/rtc``) and from an unreachable server
(``SignalClient.ts``, ``handleConnectionError``), and cannot read it at all
without ``Access-Control-Allow-Origin``. What rs/cors 1.11 does
(``cors.go``, ``handlePreflight`` and ``handleActualRequest``):

- a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) gets 204,
  ``Vary`` on the three request headers, and, from an origin asking for an
  allowed method, that origin, that method, the headers asked for and
  ``Access-Control-Max-Age: 86400``;
- any other request is served as usual, plus ``Vary: Origin`` and, with an
  ``Origin``, that origin and ``Access-Control-Expose-Headers: *``.
"""

from __future__ import annotations

import http

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

METHODS = ("OPTIONS", "HEAD", "GET", "POST", "PATCH", "DELETE")
MAX_AGE = 86400
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


def is_preflight(request: Request) -> bool:
    return request.method == "OPTIONS" and bool(
        request.headers.get("Access-Control-Request-Method")
    )


def preflight(request: Request) -> Response:
    """The answer to a CORS preflight (`is_preflight`)."""
    headers = Headers([("Vary", PREFLIGHT_VARY)])
    origin = request.headers.get("Origin", "")
    method = request.headers.get("Access-Control-Request-Method", "")
    if origin and method.upper() in METHODS:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Methods"] = method
        asked = request.headers.get("Access-Control-Request-Headers", "")
        if asked:
            headers["Access-Control-Allow-Headers"] = asked
        headers["Access-Control-Max-Age"] = str(MAX_AGE)
    headers["Content-Length"] = "0"
    status = http.HTTPStatus.NO_CONTENT
    return Response(status.value, status.phrase, headers, b"")


def allow(request: Request, response: Response) -> Response:
    """``response`` with what rs/cors adds to the answer of an actual request."""
    headers = response.headers
    headers["Vary"] = "Origin"
    origin = request.headers.get("Origin", "")
    if origin and request.method.upper() in METHODS:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = "*"
    return response
