"""Preflight: check_connectivity() and `decart-sync doctor` against the
emulator and its STUN server, and what they say when nothing answers."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import urllib.request
from typing import ClassVar

import pytest
from helpers import KEY

import decart_sync
from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator
from decart_sync.emulator.cli import admin_url
from decart_sync.preflight import ANNOUNCED_ICE_SERVERS, announced_ice_servers, classify

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
    model = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
    with Emulator(models={model.name: model}) as emu:
        # No ice_servers: the STUN server the emulator announces.
        report = decart_sync.check_connectivity(
            base_url=emu.url, deep=True, model=model, api_key=KEY
        )
        assert report.ice["servers"] == [emu.stun_url]
    session = report.session
    assert session is not None and session["error"] is None, session
    assert 0 < session["g2g_ms"] < 5000 and "glass to glass" in str(report)
    assert report.verdict in ("good", "fair"), str(report)


def test_the_emulator_announces_its_stun_server(emulator: Emulator) -> None:
    url = admin_url(emulator.url, "ice-servers")
    with urllib.request.urlopen(url, timeout=5) as response:
        assert json.loads(response.read()) == {"ice_servers": [{"urls": [emulator.stun_url]}]}
    report = decart_sync.check_connectivity(base_url=emulator.url)
    assert report.ice["servers"] == [emulator.stun_url]
    assert report.ice["transport"] == "udp" and report.verdict == "good", str(report)
    assert f"via {emulator.stun_url}" in str(report)
    # A list given wins over the announced one, an empty one included.
    report = decart_sync.check_connectivity(base_url=emulator.url, ice_servers=[])
    assert report.ice["servers"] == [] and report.ice["transport"] == "relay"


def test_a_local_service_that_announces_nothing_leaves_the_default() -> None:
    # (The default itself is a public STUN server: not gathered from here, to stay on loopback.)
    assert announced_ice_servers(f"ws://127.0.0.1:{dead_port()}", 2.0) is None
    # A plain HTTP server on loopback: reachable, but no ice-servers of its own.
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent) as server:
        worker = threading.Thread(target=server.serve_forever, daemon=True)
        worker.start()
        try:
            base = f"ws://127.0.0.1:{server.server_address[1]}"
            assert announced_ice_servers(base, 2.0) is None
            assert Silent.asked == [ANNOUNCED_ICE_SERVERS]
        finally:
            server.shutdown()
            worker.join(5)


class Silent(http.server.BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Silent.asked.append(self.path)
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_doctor_deep_against_the_emulator_needs_no_stun(emulator: Emulator) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "decart_sync.cli", "doctor", "--deep", "--model",
         "test-small:25:320x192", "--base-url", emulator.url, "--api-key", KEY, "--json"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert report["ice"] == {**report["ice"], "transport": "udp", "servers": [emulator.stun_url]}
    assert report["session"]["error"] is None and report["session"]["fps"] > 0
    assert report["verdict"] in ("good", "fair"), report  # a slow CI machine may take over 4 s
    assert done.returncode == 0, done.stderr


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
