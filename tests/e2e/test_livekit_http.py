"""The LiveKit server test double's plain HTTP: ``/rtc/validate`` and ``/rtc/v1/validate``,
the join request in the URL, CORS for browsers, a resume, and the emulator CLI's choice of
path; every test on both signaling paths (a server that serves ``/rtc/v1``, and one
before v1)."""

from __future__ import annotations

from email.message import Message

import pytest
from livekit_double import Server


def _http(
    server: Server,
    path: str,
    token: str | None = None,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, Message, str]:
    """Status, headers and text of a plain HTTP request to the server."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        server.url.replace("ws", "http", 1) + path, method=method, headers=headers or {}
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status), response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def _join_request(compression: int, offer: str = "") -> str:
    """A join_request as livekit-client and the Rust core write it."""
    import base64
    import gzip

    from livekit.protocol import rtc as lkr

    join = lkr.JoinRequest(metadata="page")
    if offer:
        join.publisher_offer.CopyFrom(lkr.SessionDescription(type="offer", sdp=offer))
    data = join.SerializeToString()
    if compression == lkr.WrappedJoinRequest.Compression.GZIP:
        data = gzip.compress(data)
    wrapped = lkr.WrappedJoinRequest(compression=compression, join_request=data)
    return base64.urlsafe_b64encode(wrapped.SerializeToString()).decode()


def test_rtc_http_routes(server: Server) -> None:
    """The validate routes check the token, the join request and the room, in the
    server's order; /rtc/v1 answers 404 where it is not served (the client falls back)."""
    from urllib.parse import quote

    token = server.call(lambda: server.rooms.token(server.rooms.create_room("r").name))
    status = lambda *args: _http(server, *args)[0]  # noqa: E731
    assert status("/rtc/validate", token) == 200
    assert status("/rtc/validate", token[:-2] + "xx") == 401
    assert status("/rtc/validate") == 401
    other = server.call(lambda: server.rooms.token("no-such-room"))
    assert _http(server, "/rtc/validate", other)[::2] == (404, "requested room does not exist")
    assert status("/rtc", token) == 404  # not a WebSocket upgrade
    assert status("/rtc/nothing", token) == 404
    joined = f"/rtc/v1/validate?join_request={quote(_join_request(1, 'v=0'))}"
    if server.path == "/rtc":  # a server before v1
        assert status("/rtc/v1", token) == status(joined, token) == 404
        return
    assert _http(server, joined, token)[::2] == (200, "success")
    plain = f"/rtc/v1/validate?join_request={quote(_join_request(0))}"
    assert status(plain, token) == 200
    assert _http(server, "/rtc/v1/validate", token)[::2] == (400, "join_request is required")
    assert _http(server, "/rtc/v1/validate?join_request=%21%21", token)[::2] == (
        400,
        "cannot base64 decode wrapped join request",
    )
    assert status(joined, token[:-2] + "xx") == 401  # the token first, as LiveKit
    assert status(f"/rtc/v1/validate?join_request=x&access_token={token}") == 400


def test_browsers_may_read_every_rtc_answer(server: Server) -> None:
    """As livekit-server's CORS (rs/cors): any origin, preflights answered."""
    token = server.call(lambda: server.rooms.token(server.rooms.create_room("cors").name))
    page = {"Origin": "http://page.example"}
    for path in ("/rtc/validate", "/rtc/v1/validate", "/rtc/nothing"):
        for who in (token, None):
            _, headers, _ = _http(server, path, who, headers=page)
            # Once each: a browser refuses an Access-Control-Allow-Origin said twice.
            assert headers.get_all("Access-Control-Allow-Origin") == ["http://page.example"]
            assert headers.get_all("Vary") == ["Origin"], path
            assert headers.get_all("Access-Control-Expose-Headers") == ["*"], path
    _, headers, _ = _http(server, "/rtc/validate", token)
    assert "Access-Control-Allow-Origin" not in headers  # no Origin, no CORS
    asked = {
        **page,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    status, headers, body = _http(server, "/rtc/v1/validate", method="OPTIONS", headers=asked)
    assert (status, body) == (204, "")
    assert headers.get_all("Access-Control-Allow-Origin") == ["http://page.example"]
    assert headers.get_all("Access-Control-Allow-Methods") == ["GET"]
    assert headers.get_all("Access-Control-Allow-Headers") == ["authorization"]
    assert headers.get_all("Access-Control-Max-Age") == ["86400"]


def test_a_resume_is_asked_to_rejoin(server: Server) -> None:
    """aiortc cannot restart ICE: a resuming client (v1: the join request's ``reconnect``;
    v0: ``?reconnect=1``) gets a leave that asks for a full reconnect, on either path."""
    import base64

    from livekit.protocol import models as lkm
    from livekit.protocol import rtc as lkr
    from websockets.sync.client import connect

    token = server.call(lambda: server.rooms.token(server.rooms.create_room("resume").name))
    if server.path == "/rtc/v1":
        join = lkr.JoinRequest(reconnect=True, participant_sid="PA_before")
        wrapped = lkr.WrappedJoinRequest(join_request=join.SerializeToString())
        query = "join_request=" + base64.urlsafe_b64encode(wrapped.SerializeToString()).decode()
    else:
        query = "reconnect=1&sid=PA_before"
    url = f"{server.url}{server.path}?{query}&access_token={token}"
    with connect(url, open_timeout=5, close_timeout=1) as ws:
        first = lkr.SignalResponse.FromString(ws.recv(timeout=5))
    assert first.WhichOneof("message") == "leave"
    assert first.leave.action == lkr.LeaveRequest.Action.RECONNECT and first.leave.can_reconnect
    assert first.leave.reason == lkm.DisconnectReason.STATE_MISMATCH


@pytest.mark.parametrize("flag", [[], ["--no-livekit-v1"]], ids=["default", "no-livekit-v1"])
def test_the_emulator_cli_serves_v1_unless_told_not_to(flag: list[str]) -> None:
    import re
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    command = [sys.executable, "-m", "decart_sync.emulator", "--port", "0", *flag]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"ws://(127\.0\.0\.1:\d+)", line)
        assert match, line
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
        try:
            opener.open(f"http://{match[1]}/rtc/v1/validate", timeout=5)
            raise AssertionError("an unauthenticated validate succeeded")
        except urllib.error.HTTPError as exc:
            status = exc.code
    finally:
        proc.terminate()
        proc.wait(10)
    assert status == (404 if flag else 401)  # not served, or served and refusing no token
