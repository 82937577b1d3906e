"""Shared fixtures: a loopback emulator, the connect() factory, other processes' pythons.

The layout: unit/ is pure logic (no session), e2e/ runs real sessions against the
emulator, drivers/ holds programs those tests run as subprocesses (some in other
virtualenvs), support/ the helpers tests import (on the path: ``from helpers import``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from helpers import SMALL, clients_of, emulator_process

import decart_sync
from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator


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
    from gui import Xvfb, opencv_python

    missing = Xvfb.missing()
    if missing:
        pytest.skip(missing)
    python, why = opencv_python()
    if python is None:
        pytest.skip(why)
    with Xvfb() as display:
        yield python, display.env


@pytest.fixture(scope="session")
def official_livekit_python() -> str:
    """A virtualenv holding today's official SDK (decart 0.2.4), made once under .bench/."""
    from benchmarks.__main__ import OFFICIAL_LIVEKIT, official_python

    python = official_python(OFFICIAL_LIVEKIT, "official-livekit-venv")
    if python is None:
        pytest.fail(f"could not install {OFFICIAL_LIVEKIT} from PyPI into .bench/")
    return python
