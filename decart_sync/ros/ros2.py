"""ROS 2 adapter (rclpy): topics, parameters and diagnostics around the core.

    python -m decart_sync.ros --ros-args -r image_in:=/camera/image_raw -p prompt:=sepia

Parameter changes (``ros2 param set /decart_sync prompt sepia``, the standard
``~/set_parameters`` service) are checked and queued at once; the service's
acknowledgement follows on the core's worker thread (see ``~/state``, the log
and ``/diagnostics``). Tested here against a fake of the few rclpy calls used
below (``tests/e2e/test_ros2_fake.py``): keep this file to those calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .core import NODE_NAME, Core
from .images import fill
from .settings import DEFAULTS, Settings

SUBSCRIBER_POLL = 0.25  # seconds between counts of image_out's subscribers


def main(argv: Sequence[str] | None = None) -> int:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    rclpy.init(args=list(argv) if argv is not None else None)
    node = rclpy.create_node(NODE_NAME)
    try:
        params = {
            name: node.declare_parameter(name, default).value for name, default in DEFAULTS.items()
        }
        settings = Settings.from_params(params)
    except Exception as exc:
        node.get_logger().fatal(f"bad parameter: {exc}")
        node.destroy_node()
        rclpy.try_shutdown()
        return 2

    image_out = node.create_publisher(Image, "image_out", 1)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    state_pub = node.create_publisher(String, "~/state", latched)
    diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", 1)

    def publish_image(frame: Any, header: Any) -> None:
        image_out.publish(fill(Image(), frame, settings.encoding, header))

    core = Core(
        settings,
        publish_image=publish_image,
        publish_state=lambda state: state_pub.publish(String(data=state)),
        log=node.get_logger(),
    )

    def on_set(changed: list[Any]) -> Any:
        problems = core.on_params({p.name: p.value for p in changed})
        return SetParametersResult(successful=not problems, reason="; ".join(problems))

    def report() -> None:
        status = core.status()
        array = DiagnosticArray()
        array.header.stamp = node.get_clock().now().to_msg()
        array.status = [
            DiagnosticStatus(
                level=bytes([status.level]),  # a ROS 2 'byte' is a one-byte bytes
                name=f"{node.get_fully_qualified_name()}: decart_sync",
                message=status.message,
                hardware_id="decart_sync",
                values=[KeyValue(key=k, value=v) for k, v in status.values.items()],
            )
        ]
        diagnostics.publish(array)

    node.add_on_set_parameters_callback(on_set)
    node.create_subscription(Image, "image_in", core.on_image, qos_profile_sensor_data)
    node.create_subscription(String, "~/prompt", lambda msg: core.set_prompt(msg.data), 10)
    node.create_timer(
        SUBSCRIBER_POLL, lambda: core.on_subscribers(image_out.get_subscription_count())
    )
    node.create_timer(settings.stats_interval, report)
    core.start()
    try:
        rclpy.spin(node)  # until Ctrl-C or rclpy.shutdown()
    except (KeyboardInterrupt, _external_shutdown()):
        pass
    finally:
        core.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _external_shutdown() -> type[BaseException]:
    """rclpy's ExternalShutdownException (Humble and later), else a stand-in nothing raises."""
    try:
        from rclpy.executors import ExternalShutdownException

        return ExternalShutdownException
    except ImportError:
        return KeyboardInterrupt
