"""Connecting to a busy service: the queue does not eat the
connect timeout, the connect's own handlers hear it live, queue_timeout bounds it; a
refused first attempt is retried as the official SDKs do, a permanent refusal is not."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from helpers import clients_of, close_to, invert, pattern, repeat, wait_for_frame, wait_until

from decart_sync import DecartSDKError, ModelDefinition
from decart_sync.emulator import Emulator, Faults

pytestmark = pytest.mark.timeout(120)

LK = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
SEED = ModelDefinition("test-small", fps=25, width=320, height=192)
MODELS = {"livekit": LK, "webrtc": SEED}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(models={m.name: m for m in MODELS.values()}) as emulator:
        yield emulator


@pytest.fixture
def connect(emu: Emulator) -> Iterator:
    with clients_of(emu.url, model=LK) as connect:
        yield connect
    emu.faults = Faults()


class Heard:
    """What handlers heard, and whether connect() had returned when they did."""

    def __init__(self) -> None:
        self.returned = threading.Event()
        self.events: list[tuple[str, Any, bool]] = []
        self._lock = threading.Lock()

    def handler(self, name: str) -> Any:
        def record(value: Any) -> None:
            with self._lock:
                self.events.append((name, value, self.returned.is_set()))

        return record

    def of(self, name: str) -> list[tuple[Any, bool]]:
        with self._lock:
            return [(value, after) for kind, value, after in self.events if kind == name]


def test_queue_time_is_not_connect_time_and_handlers_hear_it_live(connect, emu) -> None:
    # Six seconds in the queue, with four allowed to connect: only the queue's pause saves it.
    emu.faults = Faults(queue_positions=3, queue_step=2.0)
    heard = Heard()
    client = connect(
        repeat(pattern(LK)),
        initial_state={"prompt": "invert"},
        timeout=4.0,
        on={
            "queue_position": heard.handler("queue"),
            "connection_change": heard.handler("state"),
        },
    )
    heard.returned.set()
    late: list[dict[str, int]] = []
    client.on("queue_position", late.append)

    queue = heard.of("queue")
    assert [value["position"] for value, _ in queue] == [3, 2, 1]
    assert not any(after for _, after in queue), "queue positions came only after connect"
    states = [value for value, _ in heard.of("state")]
    assert states == ["connecting", "queued", "connecting", "connected"]
    # A handler added after connect still gets the connect's events, once each.
    wait_until(lambda: len(late) == 3, 5, "the held queue positions")
    assert [p["position"] for p in late] == [3, 2, 1]
    assert len(heard.of("queue")) == 3  # and the early handler got none twice
    wait_for_frame(client.frames(timeout=10), close_to(invert(pattern(LK))))


def test_queue_timeout_bounds_the_wait_and_is_not_retried(connect, emu) -> None:
    emu.faults = Faults(queue_positions=50, queue_step=1.0)
    sessions = len(emu.history)
    with pytest.raises(DecartSDKError) as info:
        connect(repeat(pattern(LK)), timeout=5.0, queue_timeout=1.5)
    assert info.value.code == "WEBRTC_TIMEOUT_ERROR" and info.value.permanent
    assert "queue" in info.value.message and "queue_timeout" in info.value.message
    assert len(emu.history) == sessions + 1  # one attempt: the user's bound is final
    served = emu.history[-1]
    # The service lets a queued session go when its client does, not when its turn comes.
    assert served.wait(lambda: served.closed, 3), "the queued session outlived its client"


def test_a_client_that_leaves_the_queue_is_let_go_at_once(emu) -> None:
    # Forty places of half a second: twenty seconds of queue the session must not sit out.
    emu.faults = Faults(queue_positions=40, queue_step=0.5)
    url = f"{emu.url}/v1/stream?api_key=k&model={LK.name}"
    ws = websocket.create_connection(url, timeout=10, suppress_origin=True)
    try:
        served = emu.wait_for_session(predicate=lambda s: s.model == LK)
        ws.send(json.dumps({"type": "livekit_join", "passthrough": True}))
        kinds = []
        while "queue_position" not in kinds:
            kinds.append(json.loads(ws.recv())["type"])
    finally:
        ws.close()
        emu.faults = Faults()
    left = time.monotonic()
    assert served.wait(lambda: served.closed, 3), "the queued session outlived its client"
    assert time.monotonic() - left < 3 and served.room is None  # never got its room
    assert served.pending_tasks == 0


@pytest.mark.parametrize("transport", ["livekit", "webrtc"])
def test_the_first_connect_retries_a_busy_service(connect, emu, transport) -> None:
    model = MODELS[transport]
    emu.faults = Faults(refuse_connects=2)
    refused = emu.refused
    states: list[str] = []
    client = connect(
        repeat(pattern(model)),
        model=model,
        initial_state={"prompt": "invert"},
        on={"connection_change": states.append},
    )
    assert emu.refused == refused + 2 and emu.faults.refuse_connects == 0
    assert states == ["connecting", "connected"]  # retries are part of connecting
    wait_for_frame(client.frames(timeout=10), close_to(invert(pattern(model))))


def test_a_permanent_refusal_is_not_retried(connect, emu) -> None:
    unknown = ModelDefinition("no-such-model", fps=25, width=320, height=192)
    refused = emu.refused
    with pytest.raises(DecartSDKError) as info:
        connect(repeat(pattern(unknown)), model=unknown, timeout=20.0)
    assert info.value.code == "MODEL_NOT_FOUND" and info.value.permanent
    assert emu.refused == refused + 1


def test_retries_stop_within_the_timeout_with_the_cause(connect, emu) -> None:
    emu.faults = Faults(refuse_connects=100)
    refused = emu.refused
    with pytest.raises(DecartSDKError) as info:
        connect(repeat(pattern(LK)), timeout=2.5)
    # Tried at 0 and 1 s; the next pause (2 s) would outlast the timeout: the cause, not
    # a bare timeout, is what the caller learns.
    assert info.value.code == "WEBRTC_SERVER_ERROR" and "capacity" in info.value.message
    assert emu.refused - refused == 2
