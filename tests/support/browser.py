"""The official JS SDK in headless Chromium, for tests/e2e/test_browser.py.

What it needs from outside is the system's: Debian's ``chromium`` (never a
browser of its own) and ``node``/``npm``, which install the pinned packages of
``tests/browser/package-lock.json`` (the SDK, livekit-client, playwright-core,
esbuild) into ``tests/browser/node_modules``. esbuild bundles the page: the SDK
is ESM, but one of its dependencies (p-retry's ``retry``) is CommonJS, which a
browser cannot import as it is. The page is served from its own origin, so the
browser enforces CORS against the emulator's ports.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE_DIR = ROOT / "tests" / "browser"
CHROMIUM = "/usr/bin/chromium"
# Set by .ci/run: a machine without node, npm or chromium fails instead of skipping.
REQUIRED = "DECART_SYNC_BROWSER_TESTS"
# Chromium's own errors quote URLs whole: keys and room tokens stay out of the log.
SECRETS = re.compile(r"((?:api_key|access_token|join_request)=)[^&\s'\"]+")


def missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    lacking = [name for name in ("node", "npm") if shutil.which(name) is None]
    if not os.access(CHROMIUM, os.X_OK):
        lacking.append(CHROMIUM)
    if not lacking:
        return None
    return f"needs {', '.join(lacking)} (Debian: apt-get install chromium nodejs npm)"


def install() -> None:
    """The pinned packages (once, again when the lock file changes), then the bundle."""
    installed = PAGE_DIR / "node_modules" / ".package-lock.json"
    lock = PAGE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        _run(["npm", "ci", "--no-audit", "--no-fund"], timeout=600)
    esbuild = str(PAGE_DIR / "node_modules" / ".bin" / "esbuild")
    bundle = ["page.js", "--bundle", "--format=esm", "--outfile=build/page.js"]
    _run([esbuild, *bundle, "--log-level=warning"], timeout=120)


def _run(command: list[str], timeout: float) -> None:
    done = subprocess.run(command, cwd=PAGE_DIR, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")


class Site:
    """tests/browser/ over HTTP on 127.0.0.1, its own origin (any free port)."""

    def __init__(self) -> None:
        handler = partial(_Quiet, directory=str(PAGE_DIR))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="browser-test-site", daemon=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> Site:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class BrowserError(AssertionError):
    """A step the page failed or did not finish in time; carries the page's last words."""


class Browser:
    """One headless Chromium page (tests/browser/drive.mjs), driven a step at a time."""

    def __init__(self, url: str, start_timeout: float = 60.0) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="decart-sync-chromium-")
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.log: deque[str] = deque(maxlen=200)  # the page's console and the driver's errors
        self._next = 0
        command = ["node", "drive.mjs", CHROMIUM, url, self._profile.name]
        self._proc = subprocess.Popen(
            command, cwd=PAGE_DIR, text=True, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self._readers = [
            threading.Thread(target=self._read_answers, name="browser-answers", daemon=True),
            threading.Thread(target=self._read_log, name="browser-log", daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        try:
            ready = self._answer(start_timeout, "the page to load")
        except BaseException:
            self.close()
            raise
        self.version = ready.get("version")

    def call(self, name: str, *args: Any, timeout: float = 30.0) -> Any:
        """``await window.page[name](...args)`` in the page; its JSON result."""
        return self._ask({"call": name, "args": list(args)}, timeout, name)

    def wait(self, expression: str, timeout: float = 30.0) -> Any:
        """Until the JS ``expression`` is truthy in the page (a condition, with a deadline);
        its value."""
        return self._ask({"wait": expression}, timeout, expression)

    def _ask(self, request: dict[str, Any], timeout: float, what: str) -> Any:
        self._next += 1
        request.update(id=self._next, timeout=int(timeout * 1000))
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        answer = self._answer(timeout + 10, what)  # the driver's own deadline goes first
        if answer.get("id") != self._next or not answer.get("ok"):
            raise BrowserError(f"{what}: {answer.get('error')}\n{self.tail()}")
        return answer.get("value")

    def _answer(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"no answer from the browser on {what}\n{self.tail()}") from None
        if answer is None:
            raise BrowserError(f"the browser quit on {what}\n{self.tail()}")
        return answer

    def tail(self, lines: int = 40) -> str:
        return "\n".join(list(self.log)[-lines:])

    def _read_answers(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self._answers.put(json.loads(line))
            except ValueError:
                self.log.append(f"driver: {line.rstrip()}")
        self._answers.put(None)

    def _read_log(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self.log.append(SECRETS.sub(r"\1<redacted>", line.rstrip()))

    def close(self, timeout: float = 15.0) -> None:
        """Closes the browser (the driver ends it on end of input), then its profile."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()  # node's own child, Chromium, goes with its pipe
            self._proc.wait(5)
        for reader in self._readers:
            reader.join(5)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
