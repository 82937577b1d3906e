"""Preflight: check_connectivity() and `decart-sync doctor` against the
emulator and its STUN server, and what they say when nothing answers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from helpers import KEY

import decart_sync
from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator
from decart_sync.preflight import classify

pytestmark = pytest.mark.timeout(120)


def dead_port() -> int:
    """A loopback port nothing listens on (TCP and UDP alike, for a moment)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_reachable_service_with_udp_is_good(emulator: Emulator) -> None:
    report = decart_sync.check_connectivity(base_url=emulator.url, ice_servers=[emulator.stun_url])
    assert report.verdict == "good" and report.reasons == ()
    assert report.websocket["reachable"] and report.websocket["rtt_ms"] is not None
    assert report.ice["transport"] == "udp" and "srflx" in report.ice["candidates"]
    assert report.ice["rtt_ms"] is not None and report.session is None
    assert "verdict: good" in str(report)


def test_nothing_answering_is_critical_with_reasons() -> None:
    port = dead_port()
    report = decart_sync.check_connectivity(
        base_url=f"ws://127.0.0.1:{port}", ice_servers=[f"stun:127.0.0.1:{port}"], timeout=2.0
    )
    assert report.verdict == "critical"
    assert not report.websocket["reachable"] and "refused" in report.websocket["error"]
    assert report.ice["transport"] == "relay"  # host candidates, but no answer from STUN
    assert any("cannot be reached" in r for r in report.reasons)
    assert any("direct UDP" in r for r in report.reasons)


def test_deep_runs_a_short_session(emulator: Emulator, small) -> None:
    report = decart_sync.check_connectivity(
        base_url=emulator.url,
        ice_servers=[emulator.stun_url],
        deep=True,
        model=small,
        api_key=KEY,
    )
    session = report.session
    assert session is not None and session["error"] is None
    assert 0 < session["ttff_ms"] < 10_000 and session["fps"] > 0
    assert report.verdict in ("good", "fair")  # a slow CI machine may take over 4 s
    assert session["g2g_ms"] is None  # plain WebRTC carries no frame timing


def test_deep_over_livekit_measures_glass_to_glass(small) -> None:
    pytest.importorskip("livekit.rtc", reason="the livekit extra is not installed")
    model = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
    with Emulator(models={model.name: model}) as emu:
        report = decart_sync.check_connectivity(
            base_url=emu.url, ice_servers=[emu.stun_url], deep=True, model=model, api_key=KEY
        )
    session = report.session
    assert session is not None and session["error"] is None, session
    assert 0 < session["g2g_ms"] < 5000 and "glass to glass" in str(report)


def test_deep_with_a_bad_key_says_so(small) -> None:
    with Emulator(api_keys=["right"], models={small.name: small}) as strict:
        report = decart_sync.check_connectivity(
            base_url=strict.url,
            ice_servers=[strict.stun_url],
            deep=True,
            model=small,
            api_key="wrong",
        )
    assert report.verdict == "critical" and report.session is not None
    assert "API key" in (report.session["error"] or "")
    assert "wrong" not in str(report)


def test_the_verdict_follows_the_js_sdks_bands() -> None:
    ok = {"reachable": True, "rtt_ms": 5, "error": None}
    assert classify(ok, {"transport": "udp", "rtt_ms": 100})[0] == "good"
    assert classify(ok, {"transport": "udp", "rtt_ms": 200})[0] == "fair"
    assert classify(ok, {"transport": "udp", "rtt_ms": 400})[0] == "poor"
    assert classify(ok, {"transport": "relay", "rtt_ms": None})[0] == "poor"
    assert classify(ok, {"transport": "failed", "rtt_ms": None})[0] == "critical"
    udp = {"transport": "udp", "rtt_ms": 10}
    for ttff, level in ((3000, "good"), (5000, "fair"), (8000, "poor"), (12000, "critical")):
        session = {"ttff_ms": ttff, "fps": 25.0, "error": None}
        assert classify(ok, udp, session)[0] == level, ttff


def test_doctor_prints_the_report_and_exits_by_verdict(emulator: Emulator) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "decart_sync.cli", "doctor", "--base-url", emulator.url,
         "--stun", emulator.stun_url, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["verdict"] == "good"
    port = dead_port()
    bad = subprocess.run(
        [sys.executable, "-m", "decart_sync.cli", "doctor", "--base-url",
         f"ws://127.0.0.1:{port}", "--stun", f"stun:127.0.0.1:{port}", "--timeout", "2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "verdict: critical" in bad.stdout and "cannot be reached" in bad.stdout
