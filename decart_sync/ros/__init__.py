"""A ROS node that restyles an image topic through a decart_sync session.

``core.py`` holds everything that does not depend on ROS (settings, the
session on its worker thread, prompt and parameter logic, diagnostics);
``images.py`` converts ``sensor_msgs/Image`` with numpy; ``ros1.py`` (rospy)
and ``ros2.py`` (rclpy) are thin adapters. ``python -m decart_sync.ros`` or
``decart-sync-ros`` runs the node with the ROS it finds. Nothing here imports
a ROS package until an adapter runs.
"""

from .core import Core
from .settings import Settings, Status, parse_model

__all__ = ["Core", "Settings", "Status", "parse_model"]
