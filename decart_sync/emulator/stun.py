"""A STUN server (RFC 5389 Binding only) on the emulator's host, for connectivity checks.

``decart_sync.check_connectivity(ice_servers=[emu.stun_url])`` and
``decart-sync doctor --stun ...`` gather a server-reflexive candidate from it
as they would from a public STUN server, with no network. It answers each
Binding request with the address the request came from; nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from aioice import stun

log = logging.getLogger(__name__)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return  # not STUN: ignored, as a public server would
        if request.message_method != stun.Method.BINDING or (
            request.message_class != stun.Class.REQUEST
        ):
            return
        response = stun.Message(
            stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=request.transaction_id
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr[:2]
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)
        self.answered += 1


class StunServer:
    """One UDP socket on ``host``; `start()` and `close()` on the emulator's loop."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port: int | None = None
        self._protocol = _Protocol()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self._protocol, local_addr=(self.host, 0)
        )
        self.port = int(transport.get_extra_info("sockname")[1])

    @property
    def answered(self) -> int:
        """Binding requests answered so far."""
        return self._protocol.answered

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"stun:{host}:{self.port}"

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()
