"""Pure logic: the one table of connect()'s options, what is made from it, and prompt=."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

import pytest

import decart_sync
from decart_sync import options
from decart_sync.errors import InvalidOptionsError
from decart_sync.options import (
    CONNECT_OPTIONS,
    InitialState,
    add_flags,
    forwarded,
    from_flags,
    typed,
    with_prompt,
)
from decart_sync.options.generate import markdown_table, table_cell, typed_source

NOWHERE = {"api_key": "k", "base_url": "ws://127.0.0.1:9"}  # nothing listens: fails if reached


def test_connect_shows_every_option_with_its_default() -> None:
    """help(), notebooks and inspect see connect()'s keywords as if written out."""
    params = list(inspect.signature(decart_sync.connect).parameters.values())
    assert params[0].name == "source"
    assert [p.name for p in params[1:]] == [o.name for o in CONNECT_OPTIONS]
    for param, option in zip(params[1:], CONNECT_OPTIONS, strict=True):
        assert param.kind is inspect.Parameter.KEYWORD_ONLY
        assert (param.default, param.annotation) == (option.default, option.annotation)


def test_connect_refuses_an_unknown_keyword_as_python_does() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'timout'; did you mean"):
        decart_sync.connect(None, model="lucy-restyle", timout=3, **NOWHERE)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'zz'$"):
        decart_sync.connect(None, model="lucy-restyle", zz=1, **NOWHERE)  # type: ignore[call-arg]


def test_completed_fills_in_the_tables_defaults() -> None:
    every = options.completed({"timeout": 3.0}, "connect")
    assert every["timeout"] == 3.0
    assert {k: v for k, v in every.items() if k != "timeout"} == {
        o.name: o.default for o in CONNECT_OPTIONS if o.name != "timeout"
    }


def test_the_typed_view_is_generated_from_the_table() -> None:
    """typed.py is what type checkers read; it is written from the table, never by hand."""
    assert Path(typed.__file__).read_text() == typed_source(), (
        "the options table changed: run python -m decart_sync.options --write"
    )
    account = {o.name for o in CONNECT_OPTIONS if o.account}
    assert account == {"api_key", "base_url", "integration"}
    session = [o.name for o in CONNECT_OPTIONS if not o.account]
    assert list(options.ConnectOptions.__annotations__) == session
    assert set(options.ConnectKeywords.__annotations__) == {o.name for o in CONNECT_OPTIONS}
    assert options.ConnectOptions(timeout=3.0) == {"timeout": 3.0}  # still a TypedDict


def test_the_docs_table_has_a_row_per_option() -> None:
    rows = markdown_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{o.name}`" for o in CONNECT_OPTIONS]
    (codec,) = [row for row in rows if row.startswith("| `video_codec`")]
    assert "`'h264'`" in codec and "`vp8`" in codec
    assert "`ModelDefinition | str | None` | required |" in rows[0]
    assert table_cell("a | b `c | d`") == "a \\| b `c | d`"


def test_flags_are_made_from_the_table() -> None:
    parser = argparse.ArgumentParser()
    names = ("timeout", "video_codec", "queue_timeout", "ice_servers", "reconnect", "mirror")
    add_flags(parser, names)
    assert from_flags(parser.parse_args([]), names) == {
        name: options.BY_NAME[name].default for name in names
    }
    args = parser.parse_args(
        [
            *("--timeout", "5", "--video-codec", "vp8", "--queue-timeout", "2.5"),
            *("--ice-servers", "stun:a", "stun:b", "--no-reconnect", "--mirror"),
        ]
    )
    assert from_flags(args, names) == {
        "timeout": 5.0,
        "video_codec": "vp8",
        "queue_timeout": 2.5,
        "ice_servers": ["stun:a", "stun:b"],
        "reconnect": False,
        "mirror": True,
    }
    with pytest.raises(SystemExit):
        parser.parse_args(["--video-codec", "av1"])
    with pytest.raises(ValueError, match="no command-line form"):
        add_flags(argparse.ArgumentParser(), ["on"])


def test_every_check_refuses_a_bad_value_and_takes_the_default() -> None:
    checked = [o for o in CONNECT_OPTIONS if o.check is not None]
    assert {o.name for o in checked} >= {"pixel_format", "timeout", "video_codec"}
    for option in checked:
        option.check(option.default)
        with pytest.raises(InvalidOptionsError, match=option.name):
            option.check(-1)


def test_forwarded_names_the_unknown_keyword_and_a_near_match() -> None:
    assert forwarded({"timeout": 5, "transport": "webrtc"}, "x") == {
        "timeout": 5,
        "transport": "webrtc",
    }
    with pytest.raises(InvalidOptionsError, match="unknown keyword 'timout'; did you mean timeout"):
        forwarded({"timout": 5}, "VideoCapture")
    with pytest.raises(InvalidOptionsError, match="VideoCapture got an unknown keyword 'zz'"):
        forwarded({"zz": 1}, "VideoCapture")
    with pytest.raises(InvalidOptionsError, match="timeout"):
        forwarded({"timeout": 0}, "VideoCapture")
    with pytest.raises(InvalidOptionsError, match="unknown keyword 'api_key'"):
        forwarded({"api_key": "k"}, "DecartClient.realtime.connect", account=False)


def test_entry_points_refuse_unknown_keywords_before_connecting() -> None:
    with pytest.raises(InvalidOptionsError, match="did you mean stats_interval"):
        decart_sync.VideoCapture(None, model="lucy-restyle", stats_intervall=1.0, **NOWHERE)
    realtime = decart_sync.DecartClient(api_key="k", realtime_base_url=NOWHERE["base_url"]).realtime
    with pytest.raises(InvalidOptionsError, match="unknown keyword 'integration'"):
        realtime.connect(None, model="lucy-restyle", integration="x")  # type: ignore[call-arg]


def test_with_prompt_is_the_one_way_to_an_initial_state() -> None:
    assert with_prompt({"timeout": 1}, None) == {"timeout": 1}
    made = with_prompt({"timeout": 1}, "sepia", enhance=False)
    assert made == {"timeout": 1, "initial_state": InitialState("sepia", False, None)}
    image_only = with_prompt({}, None, image="a.png")["initial_state"]
    assert image_only == InitialState(None, True, "a.png")
    given: dict[str, Any] = {"initial_state": {"prompt": "b"}}
    with pytest.raises(InvalidOptionsError, match="not both"):
        with_prompt(given, "a")
    assert with_prompt(given, "a", both="initial_state") is given
    # the same Desired as the dict forms the entry points used to build
    old = {"prompt": {"text": "sepia", "enhance": False}}
    assert options.desired(made["initial_state"], "rgb24") == options.desired(old, "rgb24")


def test_the_ros_node_connects_with_its_wanted_state() -> None:
    from decart_sync.ros.settings import Settings
    from decart_sync.ros.wanted import Wanted, connect_options, merge

    settings = Settings.from_params({"model": "lucy-restyle", "transport": "livekit"})
    keywords = connect_options(settings, Wanted("sepia", False, ""), "k", "ws://h")
    forwarded(keywords, "the ROS node")
    assert keywords["initial_state"] == InitialState("sepia", False, None)
    assert keywords["transport"] == "livekit" and keywords["integration"] == "decart-sync-ros"
    assert "initial_state" not in connect_options(settings, Wanted("", True, ""), None, None)

    wanted = Wanted("a", True, "")
    assert merge(wanted, {"prompt": "a"}, settings) == (None, [])
    changed, problems = merge(wanted, {"prompt": "b", "encoding": "bgr8"}, settings)
    assert changed == Wanted("b", True, "", generation=1)
    assert problems == ["encoding is read at start only; restart the node"]


def test_subscribe_options_are_subscribes_keywords() -> None:
    params = list(inspect.signature(decart_sync.subscribe).parameters)[1:]
    account = {o.name for o in CONNECT_OPTIONS if o.account}
    assert list(options.SubscribeOptions.__annotations__) == [p for p in params if p not in account]


def test_live_view_refuses_unknown_keywords_before_connecting() -> None:
    pytest.importorskip("ipywidgets")
    from decart_sync.notebook import live_view

    with pytest.raises(InvalidOptionsError, match="unknown keyword 'promt'; did you mean prompt"):
        live_view(None, model="lucy-restyle", promt="sepia", display=False, **NOWHERE)
