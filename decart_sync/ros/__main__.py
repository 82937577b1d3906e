"""``python -m decart_sync.ros`` / ``decart-sync-ros``: run the node with the ROS found.

``ROS_VERSION`` (set by every ROS setup script) picks the adapter; without it,
rclpy if it imports, else rospy. Debian's ROS 1 packages (``python3-rospy``...)
live in the system ``dist-packages``: when rospy is not importable as is, that
directory is appended to ``sys.path``, after the virtualenv's own packages,
so they cannot shadow newer copies of shared dependencies (blinker, numpy).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence

SYSTEM_PACKAGES = ("/usr/lib/python3/dist-packages",)


def find_ros(version: str | None = None) -> str | None:
    """ "1", "2" or None: which ROS this Python can import (widening sys.path for ROS 1)."""
    version = version or os.environ.get("ROS_VERSION") or None
    if version in (None, "2") and _importable("rclpy"):
        return "2"
    if version in (None, "1"):
        if _importable("rospy"):
            return "1"
        for path in SYSTEM_PACKAGES:
            if os.path.isdir(os.path.join(path, "rospy")) and path not in sys.path:
                sys.path.append(path)  # after the venv: its packages win
                importlib.invalidate_caches()
                if _importable("rospy"):
                    return "1"
    return None


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nSee docs/ros.md for topics and parameters.")
        return 0
    version = find_ros()
    if version == "2":
        from . import ros2

        return ros2.main(args)
    if version == "1":
        from . import ros1

        return ros1.main(args)
    print(
        "error: neither rclpy (ROS 2) nor rospy (ROS 1) can be imported. Source your ROS "
        "setup script, or on Debian: apt-get install python3-rospy python3-sensor-msgs "
        "python3-std-msgs python3-diagnostic-msgs",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
