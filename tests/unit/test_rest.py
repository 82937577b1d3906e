"""Pure logic: the files and tokens requests' shapes (as the JS SDK 0.1.20 sends them),
their checks, image_ref in set_image, the origin= check, and secrets kept out of reprs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from decart_sync import DecartClient, models, options
from decart_sync.errors import DecartSDKError, InvalidOptionsError, is_permanent
from decart_sync.realtime import messages
from decart_sync.realtime.images import is_file_ref, to_wire
from decart_sync.realtime.messages import Desired
from decart_sync.rest.files import check_ttl
from decart_sync.rest.tokens import ClientToken, request_body

SECRET = "sk-unit-secret"


class Recorder:
    """Stands in for ``requests.request``: keeps each call, answers with ``status``/``body``."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status, self.body = status, body

    def __call__(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append({"method": method, "url": url, **kwargs})
        response = requests.Response()
        response.status_code = self.status
        response._content = json.dumps(self.body).encode() if self.body is not None else b""
        return response


@pytest.fixture
def account() -> DecartClient:
    return DecartClient(api_key=SECRET, base_url="https://rest.example/", integration="unit/1")


FILE = {
    "id": "file_abc",
    "filename": "a.png",
    "mime_type": "image/png",
    "size_bytes": 3,
    "created_at": "2026-01-01T00:00:00Z",
    "expires_at": None,
}


def test_upload_is_a_multipart_post_with_ttl(monkeypatch, account: DecartClient) -> None:
    recorder = Recorder(body=FILE)
    monkeypatch.setattr(requests, "request", recorder)
    ref = account.files.upload(b"\x89PNG\r\n\x1a\nrest", ttl_seconds=3600, timeout=7)
    assert ref.id == "file_abc" and ref.expires_at is None
    (call,) = recorder.calls
    assert (call["method"], call["url"], call["timeout"]) == (
        "POST",
        "https://rest.example/v1/files",
        7.0,
    )
    assert call["data"] == {"ttl_seconds": "3600"}
    name, content, mime = call["files"]["file"]
    assert (name, content[:4], mime) == ("upload", b"\x89PNG", "image/png")
    assert call["headers"]["X-API-KEY"] == SECRET
    assert call["headers"]["User-Agent"].startswith("decart-sync/")
    assert "unit/1" in call["headers"]["User-Agent"]

    account.files.upload(b"x", ttl_seconds="persistent")
    assert recorder.calls[-1]["data"] == {"ttl_seconds": "persistent"}
    account.files.upload(b"x")
    assert recorder.calls[-1]["data"] == {}  # the service's default TTL

    account.files.get("file_a/b")
    account.files.delete("file_abc")
    assert [(c["method"], c["url"]) for c in recorder.calls[-2:]] == [
        ("GET", "https://rest.example/v1/files/file_a%2Fb"),
        ("DELETE", "https://rest.example/v1/files/file_abc"),
    ]


@pytest.mark.parametrize("ttl", [59, 720 * 3600 + 1, 1.5, True, "60", "forever"])
def test_a_bad_ttl_is_refused_before_any_request(ttl: Any) -> None:
    with pytest.raises(DecartSDKError) as info:
        check_ttl(ttl)
    assert info.value.code == "INVALID_INPUT"


def test_ttl_bounds_are_the_js_sdks() -> None:
    assert check_ttl(60) == "60" and check_ttl(720 * 3600) == str(720 * 3600)
    assert check_ttl(None) is None


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "INVALID_API_KEY"), (403, "INVALID_API_KEY"), (413, "FILES_UPLOAD_ERROR")],
)
def test_failures_carry_codes_and_never_the_key(
    monkeypatch, account: DecartClient, status: int, code: str
) -> None:
    monkeypatch.setattr(requests, "request", Recorder(status, {"detail": "nope"}))
    with pytest.raises(DecartSDKError) as info:
        account.files.upload(b"x")
    assert info.value.code == code and info.value.data == {"status": status}
    assert "nope" in info.value.message and SECRET not in str(info.value)


def test_each_files_call_has_its_code(monkeypatch, account: DecartClient) -> None:
    monkeypatch.setattr(requests, "request", Recorder(404, {"detail": "File not found"}))
    for call, code in (
        (account.files.get, "FILES_GET_ERROR"),
        (account.files.delete, "FILES_DELETE_ERROR"),
    ):
        with pytest.raises(DecartSDKError) as info:
            call("file_x")
        assert info.value.code == code


def test_a_timeout_is_the_operations_error(monkeypatch, account: DecartClient) -> None:
    def slow(*args: Any, **kwargs: Any) -> None:
        raise requests.ReadTimeout("slow")

    monkeypatch.setattr(requests, "request", slow)
    with pytest.raises(DecartSDKError) as info:
        account.tokens.create(timeout=2)
    assert info.value.code == "TOKEN_CREATE_ERROR" and "within 2.0 s" in info.value.message


def test_tokens_create_sends_the_js_sdks_camel_case_body(
    monkeypatch, account: DecartClient
) -> None:
    answer = {
        "apiKey": "ek_secret",
        "token": "eyJ.secret",
        "expiresAt": "2026-01-01T00:05:00Z",
        "permissions": {"models": ["lucy-2.1"], "origins": ["https://a.example"]},
        "constraints": {"realtime": {"maxSessionDuration": 120}},
    }
    recorder = Recorder(body=answer)
    monkeypatch.setattr(requests, "request", recorder)
    token = account.tokens.create(
        expires_in=300,
        allowed_models=[models.realtime("lucy-2.1"), "lucy-restyle-2"],
        allowed_origins=["https://a.example"],
        max_session_duration=120,
        metadata={"role": "viewer"},
    )
    (call,) = recorder.calls
    assert (call["method"], call["url"]) == ("POST", "https://rest.example/v1/client/tokens")
    assert call["json"] == {
        "metadata": {"role": "viewer"},
        "expiresIn": 300,
        "allowedModels": ["lucy-2.1", "lucy-restyle-2"],
        "allowedOrigins": ["https://a.example"],
        "constraints": {"realtime": {"maxSessionDuration": 120}},
    }
    assert token.api_key == "ek_secret" and token.token == "eyJ.secret"
    assert "secret" not in repr(token) and token.constraints == answer["constraints"]
    account.tokens.create()
    assert recorder.calls[-1]["json"] == {}  # as JSON.stringify({}): every field optional


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expires_in": 0},
        {"expires_in": 3601},
        {"allowed_models": "lucy-2.1"},
        {"allowed_models": ["m"] * 21},
        {"allowed_origins": ["example.com"]},
        {"allowed_origins": ["https://a.example/path"]},
        {"max_session_duration": 0},
        {"metadata": ["not", "a", "dict"]},
    ],
)
def test_token_options_are_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(DecartSDKError) as info:
        request_body(**kwargs)
    assert info.value.code == "INVALID_INPUT"


def test_an_answer_without_a_key_is_the_calls_error() -> None:
    with pytest.raises(DecartSDKError) as info:
        ClientToken.from_json({"expiresAt": "x"})
    assert info.value.code == "TOKEN_CREATE_ERROR"


def test_reprs_hide_the_key(account: DecartClient) -> None:
    for thing in (account, account.files, account.tokens):
        assert SECRET not in repr(thing)
    assert "https://rest.example" in repr(account)


def test_base_urls(monkeypatch) -> None:
    monkeypatch.delenv("DECART_BASE_URL", raising=False)
    assert DecartClient(api_key="k").base_url == "https://api.decart.ai"
    monkeypatch.setenv("DECART_BASE_URL", "http://127.0.0.1:9/")
    assert DecartClient(api_key="k").base_url == "http://127.0.0.1:9"
    with pytest.raises(DecartSDKError) as info:
        DecartClient(api_key="k", base_url="ftp://x")
    assert info.value.code == "INVALID_BASE_URL"


def test_a_file_id_goes_as_image_ref() -> None:
    assert messages.set_image("file_abc") == {"type": "set_image", "image_ref": "file_abc"}
    assert messages.set_image("file_abc", "invert", None) == {
        "type": "set_image",
        "image_ref": "file_abc",
        "prompt": "invert",
        "enhance_prompt": True,
    }
    assert messages.set_image("aGVsbG8=")["image_data"] == "aGVsbG8="
    assert messages.initial(Desired(prompt="p", enhance=False, image="file_x")) == {
        "type": "set_image",
        "image_ref": "file_x",
        "prompt": "p",
        "enhance_prompt": False,
    }


def test_a_file_id_is_sent_as_it_is_but_a_file_of_that_name_is_read(tmp_path, monkeypatch) -> None:
    assert to_wire(" file_abc ") == "file_abc"
    assert is_file_ref("file_abc") and not is_file_ref(b"file_abc")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file_1.png").write_bytes(b"not really")
    assert not is_file_ref("file_1.png")  # an existing file: its picture is sent
    desired = options.desired({"image": "file_abc", "prompt": "x"}, "rgb24")
    assert desired.image == "file_abc"


@pytest.mark.parametrize(
    "origin", ["https://a.example", "http://localhost:3000", "http://[::1]:8080", None]
)
def test_an_origin_is_a_full_origin(origin: str | None) -> None:
    assert options.origin(origin) == origin


@pytest.mark.parametrize(
    "origin",
    [
        "a.example",
        "https://a.example/",
        "https://a.example/x",
        "https://a.example?q",
        "https://",
        "https://a.example:99999",
        "https://u@a.example",
        " https://a.example",
        5,
    ],
)
def test_a_partial_origin_is_refused(origin: Any) -> None:
    with pytest.raises(InvalidOptionsError, match="full origin"):
        options.origin(origin)


def test_a_missing_file_is_permanent() -> None:
    assert is_permanent("File not found: file_x (unknown, expired or deleted)")
