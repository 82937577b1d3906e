"""Tests that install packages from the package index into ``.bench/`` (the official
SDKs, OpenCV's windowed wheel; benchmarks/venvs.py makes the virtualenvs) run only
when asked: ``DECART_SYNC_TEST_DOWNLOADS=1``. CI asks; elsewhere they skip, saying so."""

from __future__ import annotations

import os

import pytest

from benchmarks.venvs import venv_python

SWITCH = "DECART_SYNC_TEST_DOWNLOADS"


def bench_python(venv: tuple[str, tuple[str, ...]]) -> str:
    """The python of ``.bench/NAME`` with ``requirements`` (made once), ``venv`` being
    ``(NAME, requirements)``; skips unless downloads are on, fails if the install does."""
    name, requirements = venv
    if os.environ.get(SWITCH) != "1":
        pytest.skip(
            f"installs {requirements[0]} from the package index into .bench/{name}; "
            f"set {SWITCH}=1 to run it"
        )
    python, why = venv_python(name, requirements)
    if python is None:
        pytest.fail(why)
    return python
