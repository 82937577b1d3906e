"""ROS 2: ros2 launch examples/ros/decart_sync.launch.py camera:=/camera/image_raw

The node is a plain Python module (no ament package), so it is started as a
process with ``--ros-args``. The API key comes from DECART_API_KEY in the
environment, never from a parameter; without one, pass emulator_url:=ws://...
or the node starts an embedded emulator.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration


def generate_launch_description() -> LaunchDescription:
    args = {
        "camera": "/camera/image_raw",
        "model": "lucy-restyle",
        "prompt": "sepia",
        "lazy": "true",
    }
    c = {name: LaunchConfiguration(name) for name in args}
    params = ["model", "prompt", "lazy"]  # add "-p", "image:=..." / "emulator_url:=..." as needed
    command = ["python3", "-m", "decart_sync.ros", "--ros-args", "-r", "__node:=decart_sync"]
    command += ["-r", ["image_in:=", c["camera"]], "-r", ["image_out:=", c["camera"], "/restyled"]]
    for name in params:
        command += ["-p", [f"{name}:=", c[name]]]
    command += ["-p", "encoding:=rgb8", "-p", "stats_interval:=1.0"]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=value) for name, value in args.items()]
        + [ExecuteProcess(cmd=command, output="screen")]
    )
