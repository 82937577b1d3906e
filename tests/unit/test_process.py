"""decart_sync._process: every process-wide change is listed, and each installer is idempotent.

Each check puts back what it changes (sys.meta_path, aioice, atexit, the
SIGINT handler, sys.stdout/stderr), so the test process is left as it was.
"""

from __future__ import annotations

import inspect
import io
import signal
import subprocess
import sys
import threading

import pytest

from decart_sync import _process


def test_every_installer_is_listed_in_the_table_and_documented() -> None:
    public = {
        name
        for name, value in vars(_process).items()
        if inspect.isfunction(value) and value.__module__ == _process.__name__
        if not name.startswith("_")
    }
    helpers = {"unroute_thread_output", "captured", "ipython_shell", "hand_back_freed_memory"}
    # (undo, use and look: not installers)
    assert public - helpers == {installer.__name__ for installer in _process.INSTALLERS}
    assert _process.__doc__ is not None
    table = _process.__doc__.split("=====")[1:]  # the rows come after the first rule
    for installer in _process.INSTALLERS:
        assert installer.__name__ in "".join(table), installer.__name__
        doc = inspect.getdoc(installer) or ""
        for section in ("Changes:", "Why:", "Upstream:", "Versions:"):
            assert section in doc, (installer.__name__, section)


def test_import_decart_sync_installs_only_the_opencv_hook() -> None:
    # the others wait for what needs them: a loopback URL, LiveKit, a notebook view
    probe = """
import signal, sys
import decart_sync
from decart_sync import _process
assert sys.meta_path[0] is _process._OPENCV_HOOK
assert not {"av", "aioice", "livekit", "IPython"} & set(sys.modules), sys.modules.keys()
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
assert not isinstance(sys.stdout, _process._Routed)
assert not _process._livekit_settle_installed and not _process._loopback_installed
decart_sync.connect, decart_sync.DecartClient  # the client, and av under it
assert "av" in sys.modules and not {"aiortc", "livekit"} & set(sys.modules)  # a session's
import decart_sync.realtime.transports.livekit
assert "aiortc" not in sys.modules  # a LiveKit session loads no aiortc
import decart_sync.realtime.transports.webrtc
assert "aiortc" in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _without_hook() -> list[object]:
    return [finder for finder in sys.meta_path if finder is not _process._OPENCV_HOOK]


def test_opencv_hook_is_idempotent_and_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "meta_path", _without_hook())
    monkeypatch.delitem(sys.modules, "av", raising=False)
    _process.load_opencv_before_av()
    once = list(sys.meta_path)
    _process.load_opencv_before_av()
    assert sys.meta_path == once and once[0] is _process._OPENCV_HOOK
    loaded: list[bool] = []
    monkeypatch.setattr(_process, "_load_opencv", lambda: loaded.append(True))
    assert _process._OPENCV_HOOK.find_spec("numpy", None) is None
    assert not loaded and sys.meta_path == once  # only av sets it off
    assert _process._OPENCV_HOOK.find_spec("av", None) is None  # av itself: the usual finders
    assert loaded == [True] and _process._OPENCV_HOOK not in sys.meta_path


def test_opencv_hook_is_not_armed_once_av_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "meta_path", _without_hook())
    monkeypatch.setitem(sys.modules, "av", sys.modules.get("av") or object())
    before = list(sys.meta_path)
    _process.load_opencv_before_av()
    assert sys.meta_path == before


def test_loopback_candidates_are_added_once(monkeypatch: pytest.MonkeyPatch) -> None:
    aioice_ice = pytest.importorskip("aioice.ice")

    def addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["10.1.2.3"] if use_ipv4 else ["fd00::1"]

    monkeypatch.setattr(aioice_ice, "get_host_addresses", addresses)
    monkeypatch.setattr(_process, "_loopback_installed", False)
    _process.allow_loopback_candidates()
    patched = aioice_ice.get_host_addresses
    _process.allow_loopback_candidates()
    assert aioice_ice.get_host_addresses is patched is not addresses
    assert patched(True, False) == ["127.0.0.1", "10.1.2.3"]
    assert patched(False, True) == ["fd00::1"]


def test_livekit_exit_grace_is_registered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[object] = []
    monkeypatch.setattr(_process.atexit, "register", registered.append)
    monkeypatch.setattr(_process, "_livekit_settle_installed", False)
    _process.settle_livekit_at_exit()
    _process.settle_livekit_at_exit()
    assert registered == [_process._settle_livekit]


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need the main thread"
)
def test_sigint_chain_is_made_once_per_callback_and_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_process, "_on_interrupt", [])  # no live view of another test is stopped
    before = signal.getsignal(signal.SIGINT)
    calls: list[str] = []

    def callback() -> None:
        calls.append("ours")

    try:
        _process.chain_sigint(callback)
        handler = signal.getsignal(signal.SIGINT)
        _process.chain_sigint(callback)
        assert signal.getsignal(signal.SIGINT) is handler
        assert _process._on_interrupt.count(callback) == 1
        if before is signal.default_int_handler:  # pytest's: check the order without a signal
            assert callable(handler)
            with pytest.raises(KeyboardInterrupt):
                handler(signal.SIGINT, None)
            assert calls == ["ours"]
    finally:
        signal.signal(signal.SIGINT, before)


def test_thread_output_is_routed_once_and_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    user = object()
    _process.route_thread_output(user)
    routed = sys.stdout
    _process.route_thread_output(user)
    assert sys.stdout is routed
    assert isinstance(routed, _process._Routed) and routed.wrapped is out
    with _process.captured() as (mine, _):
        print("captured")
    print("not captured")
    assert mine.getvalue() == "captured\n" and out.getvalue() == "not captured\n"
    _process.unroute_thread_output(user)
    assert sys.stdout is out and sys.stderr is err
    _process.unroute_thread_output(user)
    assert sys.stdout is out and sys.stderr is err
