"""Make sure OpenCV, when installed, is loaded before PyAV.

PyAV's wheel bundles its own libxcb plus copies of libxcb-shape, -shm and
-xfixes under the same file names as the copies in OpenCV's windowed wheel.
Whichever wheel loads first provides those three to the process. When it is
PyAV, OpenCV's Qt window talks to the X server through its libxcb while the
helpers use PyAV's libxcb, and the first ``cv2.imshow``/``waitKey`` spins at
100% CPU forever. Loading OpenCV first gives the process OpenCV's copies,
which PyAV (which never opens a window) does not mind.

Users import decart_sync and cv2 in any order, and the media stack (av,
aiortc) is imported lazily, possibly long after both; so a one-shot import
hook runs ``import cv2`` right before the first ``import av``, from anywhere.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

log = logging.getLogger(__name__)


class _LoadOpenCVFirst(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "av":
            uninstall()
            load_opencv()
        return None  # the ordinary finders import av itself


_HOOK = _LoadOpenCVFirst()


def load_opencv() -> None:
    """Import cv2 if it is installed; a broken OpenCV must not break this library."""
    if "cv2" in sys.modules:
        return
    try:
        if importlib.util.find_spec("cv2") is None:
            return
        importlib.import_module("cv2")
    except Exception as exc:  # an OpenCV that cannot load (no libGL...) is the user's to see
        log.debug("cv2 is installed but did not import (%r); loading av anyway", exc)


def install() -> None:
    """Arm the hook, unless av is loaded already (then it is too late to matter)."""
    if "av" not in sys.modules and _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def uninstall() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)
