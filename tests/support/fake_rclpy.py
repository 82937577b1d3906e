"""A small fake of the rclpy calls decart_sync/ros/ros2.py makes, and of its message types.

rclpy cannot be installed on these machines. This fake keeps rclpy's shape
where the adapter depends on it: callbacks (subscriptions, timers, parameter
changes) run on the thread inside ``rclpy.spin``, one at a time, like the
default single-threaded executor; parameters come from ``--ros-args -p
name:=value`` and keep the type they were declared with; ``~/`` names resolve
under the node; ``rclpy.shutdown()`` from another thread makes ``spin`` raise
``ExternalShutdownException``; messages have ROS 2's field types (a
``builtin_interfaces/Time`` stamp with ``sec``/``nanosec``, ``uint8[]`` data as
``array.array('B')``, ``DiagnosticStatus.level`` as one byte).

``install(monkeypatch)`` puts the modules in ``sys.modules`` and returns the
`Graph` a test drives: ``publish(topic, msg)``, ``set_parameters``,
``set_subscribers(topic, n)``, ``published[topic]``, ``shutdown()``.
"""

from __future__ import annotations

import array
import enum
import itertools
import queue
import threading
import time
import types
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

# -- messages ----------------------------------------------------------------------


class _Msg:
    __slots__: tuple[str, ...] = ()
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {}

    def __init__(self, **fields: Any) -> None:
        for name, make in self._defaults.items():
            setattr(self, name, fields.pop(name) if name in fields else make())
        if fields:
            raise TypeError(f"{type(self).__name__} has no fields {sorted(fields)}")


class Time(_Msg):
    __slots__ = ("nanosec", "sec")
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {"sec": int, "nanosec": int}


class Header(_Msg):
    __slots__ = ("frame_id", "stamp")
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {"stamp": Time, "frame_id": str}


class Image(_Msg):
    __slots__ = ("_data", "encoding", "header", "height", "is_bigendian", "step", "width")
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {
        "header": Header,
        "height": int,
        "width": int,
        "encoding": str,
        "is_bigendian": int,
        "step": int,
        "data": lambda: array.array("B"),
    }

    @property
    def data(self) -> array.array[int]:
        return self._data

    @data.setter
    def data(self, value: Any) -> None:  # what rosidl's setter accepts: bytes, array('B'), ints
        if isinstance(value, array.array):
            if value.typecode != "B":
                raise AssertionError("uint8[] needs array('B')")
            self._data = value
        else:
            self._data = array.array("B", value)


class String(_Msg):
    __slots__ = ("data",)
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {"data": str}


class KeyValue(_Msg):
    __slots__ = ("key", "value")
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {"key": str, "value": str}


class DiagnosticStatus(_Msg):
    OK, WARN, ERROR, STALE = b"\x00", b"\x01", b"\x02", b"\x03"
    __slots__ = ("_level", "hardware_id", "message", "name", "values")
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {
        "level": lambda: b"\x00",
        "name": str,
        "message": str,
        "hardware_id": str,
        "values": list,
    }

    @property
    def level(self) -> bytes:
        return self._level

    @level.setter
    def level(self, value: Any) -> None:
        if not (isinstance(value, bytes) and len(value) == 1):
            raise AssertionError(f"a ROS 2 'byte' field takes one byte, got {value!r}")
        self._level = value


class DiagnosticArray(_Msg):
    __slots__ = ("header", "status")
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {"header": Header, "status": list}


class SetParametersResult(_Msg):
    __slots__ = ("reason", "successful")
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {"successful": bool, "reason": str}


# -- rclpy ---------------------------------------------------------------------------


class ExternalShutdownException(Exception):
    pass


class DurabilityPolicy(enum.Enum):
    VOLATILE = 2
    TRANSIENT_LOCAL = 1


class QoSProfile:
    def __init__(self, *, depth: int, durability: DurabilityPolicy = DurabilityPolicy.VOLATILE):
        self.depth, self.durability = depth, durability


qos_profile_sensor_data = QoSProfile(depth=5)


class Parameter:
    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value = name, value


class Logger:
    def __init__(self, graph: Graph) -> None:
        self._graph = graph

    def _log(self, level: str, msg: str) -> None:
        self._graph.logs.append(f"[{level}] {msg}")

    def info(self, msg: str) -> None:
        self._log("INFO", msg)

    def warning(self, msg: str) -> None:
        self._log("WARN", msg)

    def error(self, msg: str) -> None:
        self._log("ERROR", msg)

    def fatal(self, msg: str) -> None:
        self._log("FATAL", msg)


class Publisher:
    def __init__(self, graph: Graph, kind: type, topic: str, qos: Any) -> None:
        self.graph, self.kind, self.topic, self.qos = graph, kind, topic, qos

    def publish(self, msg: Any) -> None:
        assert isinstance(msg, self.kind), f"{self.topic} takes {self.kind.__name__}"
        with self.graph.lock:
            self.graph.published.setdefault(self.topic, []).append(msg)
            self.graph.lock.notify_all()

    def get_subscription_count(self) -> int:
        return self.graph.subscribers.get(self.topic, 0)


class Clock:
    def now(self) -> Any:
        t = time.time()
        return types.SimpleNamespace(to_msg=lambda: Time(sec=int(t), nanosec=int(t % 1 * 1e9)))


class Node:
    def __init__(self, graph: Graph, name: str) -> None:
        self.graph, self.name = graph, name
        self.params: dict[str, Parameter] = {}
        self.on_set: list[Callable[[list[Parameter]], Any]] = []
        self.destroyed = False

    def _resolve(self, topic: str) -> str:
        if topic.startswith("~/"):
            return f"/{self.name}/{topic[2:]}"
        return topic if topic.startswith("/") else "/" + topic

    def declare_parameter(self, name: str, default: Any) -> Parameter:
        value = self.graph.overrides.get(name, default)
        if type(value) is not type(default):  # rclpy: an override must match the declared type
            value = type(default)(value) if isinstance(default, float | str) else value
        assert type(value) is type(default), f"parameter {name}: {value!r} is not {type(default)}"
        self.params[name] = Parameter(name, value)
        return self.params[name]

    def add_on_set_parameters_callback(self, callback: Callable[[list[Parameter]], Any]) -> None:
        self.on_set.append(callback)

    def create_publisher(self, kind: type, topic: str, qos: Any) -> Publisher:
        return Publisher(self.graph, kind, self._resolve(topic), qos)

    def create_subscription(
        self, kind: type, topic: str, callback: Callable[[Any], None], qos: Any
    ) -> None:
        self.graph.subscriptions[self._resolve(topic)] = (kind, callback)

    def create_timer(self, period: float, callback: Callable[[], None]) -> None:
        self.graph.timers.append([period, time.monotonic() + period, callback])

    def get_logger(self) -> Logger:
        return Logger(self.graph)

    def get_clock(self) -> Clock:
        return Clock()

    def get_fully_qualified_name(self) -> str:
        return "/" + self.name

    def destroy_node(self) -> None:
        self.destroyed = True


class Graph:
    """The fake ROS 2 world, and the test's handle on it."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.overrides: dict[str, Any] = {}
        self.node: Node | None = None
        self.subscriptions: dict[str, tuple[type, Callable[[Any], None]]] = {}
        self.timers: list[list[Any]] = []
        self.published: dict[str, list[Any]] = {}
        self.subscribers: dict[str, int] = {}
        self.logs: list[str] = []
        self.work: queue.Queue[Callable[[], None]] = queue.Queue()
        self.running = False
        self.spinning = threading.Event()

    # rclpy's module functions
    def init(self, args: list[str] | None = None) -> None:
        args = list(args or [])
        if "--ros-args" in args:
            ros = args[args.index("--ros-args") + 1 :]
            for flag, value in itertools.pairwise(ros):
                if flag == "-p":
                    name, _, text = value.partition(":=")
                    self.overrides[name] = _yaml_scalar(text)
        self.running = True

    def create_node(self, name: str) -> Node:
        self.node = Node(self, name)
        return self.node

    def spin(self, node: Node) -> None:
        self.spinning.set()
        while self.running:
            now = time.monotonic()
            for timer in self.timers:
                if now >= timer[1]:
                    timer[1] = now + timer[0]
                    timer[2]()
            try:
                callback = self.work.get(timeout=0.01)
            except queue.Empty:
                continue
            callback()
        raise ExternalShutdownException

    def shutdown(self) -> None:
        self.running = False

    def try_shutdown(self) -> None:
        self.running = False

    def ok(self) -> bool:
        return self.running

    # what a test does
    def publish(self, topic: str, msg: Any) -> None:
        kind, callback = self.subscriptions[topic]
        assert isinstance(msg, kind)
        self.work.put(lambda: callback(msg))

    def set_parameters(self, values: dict[str, Any], timeout: float = 5.0) -> Any:
        """Like the node's ~/set_parameters service: callbacks on the spin thread."""
        assert self.node is not None
        done: queue.Queue[Any] = queue.Queue()

        def call() -> None:
            params = [Parameter(k, v) for k, v in values.items()]
            result = SetParametersResult(successful=True)
            for callback in self.node.on_set:  # type: ignore[union-attr]
                result = callback(params)
                if not result.successful:
                    break
            if result.successful:
                for p in params:
                    self.node.params[p.name] = p  # type: ignore[union-attr]
            done.put(result)

        self.work.put(call)
        return done.get(timeout=timeout)

    def set_subscribers(self, topic: str, count: int) -> None:
        self.subscribers[topic] = count

    def wait_published(
        self, topic: str, predicate: Callable[[Any], bool], timeout: float, after: int = 0
    ) -> Any:
        """The first message on ``topic`` (from index ``after``) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        seen = after
        with self.lock:
            while True:
                messages = self.published.get(topic, [])
                for msg in messages[seen:]:
                    if predicate(msg):
                        return msg
                seen = len(messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"nothing matching on {topic} within {timeout} s")
                self.lock.wait(remaining)


def _yaml_scalar(text: str) -> Any:
    """How ``-p name:=value`` is typed: bool, int, float, else string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def install(monkeypatch: pytest.MonkeyPatch) -> Graph:
    """Put the fake rclpy and message packages in ``sys.modules``; returns the graph."""
    graph = Graph()

    def module(name: str, **attrs: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(__import__("sys").modules, name, mod)
        return mod

    module(
        "rclpy",
        init=graph.init,
        create_node=graph.create_node,
        spin=graph.spin,
        shutdown=graph.shutdown,
        try_shutdown=graph.try_shutdown,
        ok=graph.ok,
    )
    module(
        "rclpy.qos",
        DurabilityPolicy=DurabilityPolicy,
        QoSProfile=QoSProfile,
        qos_profile_sensor_data=qos_profile_sensor_data,
    )
    module("rclpy.executors", ExternalShutdownException=ExternalShutdownException)
    module("rcl_interfaces")
    module("rcl_interfaces.msg", SetParametersResult=SetParametersResult)
    module("sensor_msgs")
    module("sensor_msgs.msg", Image=Image)
    module("std_msgs")
    module("std_msgs.msg", String=String, Header=Header)
    module("diagnostic_msgs")
    module(
        "diagnostic_msgs.msg",
        DiagnosticArray=DiagnosticArray,
        DiagnosticStatus=DiagnosticStatus,
        KeyValue=KeyValue,
    )
    return graph
