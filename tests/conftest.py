"""Shared fixtures: a loopback emulator, the connect() factory, other processes' pythons.

The layout: unit/ is pure logic (no session), e2e/ runs real sessions against the
emulator, drivers/ holds programs those tests run as subprocesses (some in other
virtualenvs), support/ the helpers tests import (on the path: ``from helpers import``).
Tests that download packages into .bench/ skip unless asked (tests/support/downloads.py).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from downloads import bench_python
from helpers import SMALL, clients_of, emulator_process

import decart_sync
from benchmarks.venvs import OFFICIAL_LIVEKIT_VENV, OFFICIAL_VENV
from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator

# Ctrl-C's tests need Python's own SIGINT handler, here and in the programs they start.
# A shell starts a background job (``cmd &``, no job control) with SIGINT ignored, and
# Python then installs no handler; a terminal or a CI runner leaves it alone.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(models={SMALL.name: SMALL}) as emu:
        yield emu


@pytest.fixture
def small() -> ModelDefinition:
    return SMALL


@pytest.fixture
def connect(emulator: Emulator) -> Iterator[Callable[..., decart_sync.RealtimeClient]]:
    """``connect(source, **options)`` against the emulator; every client is closed after."""
    with clients_of(emulator.url, model=SMALL) as connect:
        yield connect


@pytest.fixture(scope="session")
def remote_emulator() -> Iterator[str]:
    """An emulator in another process, so this process's threads are the client's alone."""
    with emulator_process() as (url, _proc):
        yield url


@pytest.fixture(scope="session")
def gui() -> Iterator[tuple[str, dict[str, str]]]:
    """A python with OpenCV's windowed wheel (tests/support/gui.py) and the env of an Xvfb
    display."""
    from gui import OPENCV_VENV, Xvfb

    missing = Xvfb.missing()
    if missing:
        pytest.skip(missing)
    python = bench_python(OPENCV_VENV)
    with Xvfb() as display:
        yield python, display.env


@pytest.fixture(scope="session")
def official_python() -> str:
    """A virtualenv holding the classic models' official SDK (decart 0.0.37)."""
    return bench_python(OFFICIAL_VENV)


@pytest.fixture(scope="session")
def official_livekit_python() -> str:
    """A virtualenv holding today's official SDK (decart 0.2.4)."""
    return bench_python(OFFICIAL_LIVEKIT_VENV)


@pytest.fixture(params=[True, False], ids=["rtc-v1", "rtc"])
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The LiveKit server double (tests/support/livekit_double.py) on both signaling
    paths: serving /rtc/v1, and a server before v1."""
    from livekit_double import Server

    srv = Server(single_pc=request.param)
    try:
        yield srv
    finally:
        srv.close()
