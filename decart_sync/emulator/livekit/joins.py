"""What a client asks of ``/rtc`` or ``/rtc/v1``, read as a LiveKit server reads it.

Two signaling paths (livekit-server's ``pkg/service/rtcservice.go``,
``SetupRoutes`` and ``validateInternal``):

- ``/rtc`` (v0, the classic one): two peer connections; the join's details
  are query parameters (``reconnect=1`` asks to resume);
- ``/rtc/v1``: one peer connection carrying both directions; everything is
  in ``join_request``: URL-safe base64 of a ``WrappedJoinRequest`` whose
  ``join_request`` is a ``JoinRequest``, plain or gzipped (``compression``),
  which may carry the client's first publisher offer (livekit-client's
  ``SignalClient.ts``, ``createJoinRequestConnectionParams``; the Rust
  core's ``signal_client/mod.rs``, ``create_join_request_param``; both gzip).

A malformed ``join_request`` is a 400 with the server's own words; on v1 it is
required, on v0 ignored (the server reads it only if present, and then as v1;
no client sends it there).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from livekit.protocol import rtc as lkr

V0_PATH = "/rtc"
V1_PATH = "/rtc/v1"
PATHS = (V0_PATH, V1_PATH)
# Go's http.DefaultMaxHeaderBytes: the server's bound on a join request, plain or unzipped.
MAX_JOIN_REQUEST = 1 << 20


class JoinRequestError(ValueError):
    """A ``join_request`` the server would refuse with 400 (the message is its answer)."""


@dataclass(frozen=True)
class Join:
    """One signal connection's request: its path and what it asks on joining."""

    path: str = V0_PATH
    reconnect: bool = False  # a resume of a participant's session
    publisher_offer: lkr.SessionDescription | None = None  # v1: answered right after join
    add_tracks: tuple[lkr.AddTrackRequest, ...] = ()  # v1: as if sent after join

    @property
    def single(self) -> bool:
        """One peer connection for both directions (``/rtc/v1``)."""
        return self.path == V1_PATH


def parse(path: str, query: Mapping[str, str]) -> Join:
    """The join that a request to ``path`` (one of `PATHS`) with ``query`` asks for."""
    text = query.get("join_request", "")
    if path == V0_PATH:
        return Join(V0_PATH, reconnect=query.get("reconnect") in ("1", "true"))
    if not text:
        raise JoinRequestError("join_request is required")
    request = join_request(text)
    offer = request.publisher_offer if request.HasField("publisher_offer") else None
    return Join(
        V1_PATH,
        reconnect=request.reconnect,
        publisher_offer=offer,
        add_tracks=tuple(request.add_track_requests),
    )


def join_request(text: str) -> lkr.JoinRequest:
    """``join_request``'s JoinRequest; JoinRequestError as the server words its 400s."""
    try:
        # Go's base64.URLEncoding: the URL-safe alphabet, padded, nothing else.
        wrapped_bytes = base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise JoinRequestError("cannot base64 decode wrapped join request") from None
    try:
        wrapped = lkr.WrappedJoinRequest.FromString(wrapped_bytes)
    except DecodeError:
        raise JoinRequestError("cannot unmarshal wrapped join request") from None
    data = wrapped.join_request
    if wrapped.compression == lkr.WrappedJoinRequest.Compression.GZIP:
        data = _gunzip(data)
    elif len(data) > MAX_JOIN_REQUEST:
        raise JoinRequestError("join request too large")
    try:
        return lkr.JoinRequest.FromString(data)
    except DecodeError:
        raise JoinRequestError("cannot unmarshal join request") from None


def _gunzip(data: bytes) -> bytes:
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
    try:
        out = inflate.decompress(data, MAX_JOIN_REQUEST + 1)
    except zlib.error:
        raise JoinRequestError("cannot read decompressed join request") from None
    if len(out) > MAX_JOIN_REQUEST:
        raise JoinRequestError("join request too large")
    return out
