"""Image models and video jobs over real HTTP against the emulator: ours, and the official SDK's.

The official ``decart`` 0.2.4 (its own virtualenv, ``tests/drivers/official_batch.py``)
is the oracle of the wire: its ``process()`` and ``queue.submit_and_poll()``
must work against the emulator unchanged. Our blocking calls are then checked
end to end, outputs decoded: a picture pixel for pixel (PNG), a video frame by
frame within H.264's loss.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time

import av
import numpy as np
import pytest
from helpers import DRIVERS, ROOT, wait_until

from decart_sync import DecartClient, ModelDefinition, models
from decart_sync.emulator import Emulator, Faults, transforms
from decart_sync.errors import (
    InvalidAPIKeyError,
    InvalidInputError,
    InvalidOptionsError,
    ModelNotFoundError,
    QueueResultError,
    QueueStatusError,
    QueueSubmitError,
    QueueTimeoutError,
)

pytestmark = pytest.mark.timeout(300)

KEY = "batch-test-key"
H264 = 6.0  # mean absolute error a flat 64x48 picture keeps through veryfast H.264


def gradient(width: int = 48, height: int = 32) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 5, 40 + ys * 6, 200 - xs - ys], axis=-1).astype(np.uint8)


def clip(colors: list[tuple[int, int, int]], width: int = 64, height: int = 48) -> bytes:
    """An MP4 of flat frames, one per colour, at 10 fps."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, color in enumerate(colors):
            rgb = np.full((height, width, 3), color, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


COLORS = [(200, 100, 50), (30, 160, 220), (120, 120, 20)]


@pytest.fixture(scope="module")
def emu():
    with Emulator(api_keys=KEY) as emu:
        yield emu


@pytest.fixture(autouse=True)
def well_behaved(emu: Emulator) -> None:
    emu.faults = Faults(job_pace=0.05)


@pytest.fixture
def account(emu: Emulator) -> DecartClient:
    return DecartClient(api_key=KEY, base_url=emu.rest_url)


def test_the_official_sdk_against_the_emulator(
    official_livekit_python: str, emu: Emulator, tmp_path
) -> None:
    rgb = gradient()
    (tmp_path / "in.png").write_bytes(transforms_png(rgb))
    (tmp_path / "in.mp4").write_bytes(clip(COLORS))
    emu.faults = Faults(job_pace=0.2, fail_jobs=1)  # its first job fails, its second completes
    before = len(emu.batch.jobs)
    run = subprocess.run(
        [official_livekit_python, str(DRIVERS / "official_batch.py"), emu.rest_url, KEY,
         str(tmp_path / "in.png"), str(tmp_path / "in.mp4"), str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    out = decoded((tmp_path / "official.png").read_bytes())[0]
    assert np.array_equal(out, 255 - rgb)
    assert seen["failed"] == {"status": "failed", "error": "Job failed"}
    assert seen["completed"] == "completed"
    statuses = seen["statuses"]  # every poll's status, in order
    assert statuses[0] == "pending" and statuses[-1] == "completed"
    assert statuses == sorted(statuses, key=["pending", "processing", "completed"].index)
    frames = decoded((tmp_path / "official.mp4").read_bytes())
    assert len(frames) == len(COLORS)
    for frame, color in zip(frames, COLORS, strict=True):
        flat = np.full(frame.shape, color, np.uint8)
        assert error(frame, transforms.grayscale(flat)) < H264
    assert seen["token"]["api_key_prefix"] == "ek_"
    assert seen["token"]["allowed_models"] == ["lucy-2.1"]
    assert seen["bad_key"].startswith("ProcessingError: Processing failed: 401")
    # What the emulator received from it: the form's text fields as the SDK sends them.
    failed, completed = emu.batch.jobs[before:]
    assert (failed.status, completed.status) == ("failed", "completed")
    assert (completed.request.prompt, completed.request.resolution) == ("grayscale", "720p")


def transforms_png(rgb: np.ndarray) -> bytes:
    from decart_sync.emulator.batch_media import png

    return png(rgb)


def test_process_takes_a_path_bytes_a_file_and_numpy(account: DecartClient, tmp_path) -> None:
    rgb = gradient()
    path = tmp_path / "in.png"
    path.write_bytes(transforms_png(rgb))
    cases = [
        ("invert", str(path)),
        ("grayscale", path.read_bytes()),
        ("a watercolour", open(path, "rb")),  # noqa: SIM115  # closed below
        ("sepia", rgb),
    ]
    for prompt, data in cases:
        out = account.process(model="lucy-image-2", prompt=prompt, data=data, seed=3)
        assert np.array_equal(decoded(out)[0], transforms.apply(rgb, prompt, None)), prompt
        if hasattr(data, "close"):
            data.close()


def test_process_blends_a_reference_image(account: DecartClient) -> None:
    rgb, reference = gradient(), np.full((16, 16, 3), 90, np.uint8)
    out = account.process(
        model=models.image("lucy-image-latest"), prompt="invert", data=rgb,
        reference_image=reference, enhance_prompt=False, resolution="480p",
    )  # fmt: skip
    expected = transforms.apply(rgb, "invert", np.full(rgb.shape, 90, np.uint8))
    assert np.array_equal(decoded(out)[0], expected)


def test_a_video_job_end_to_end(emu: Emulator, account: DecartClient, tmp_path) -> None:
    emu.faults.job_pace = 0.5  # long enough that a 50 ms poll sees every status
    path = tmp_path / "in.mp4"
    path.write_bytes(clip(COLORS))
    changes: list[str] = []
    progress: list = []
    result = account.queue.submit_and_poll(
        "lucy-2.1", prompt="invert", data=path, poll_interval=0.05,
        on_status_change=lambda job: changes.append(job.status), progress=progress.append,
    )  # fmt: skip
    assert result.ok and result.error is None
    assert changes == ["pending", "processing", "completed"]
    frames = decoded(result.data or b"")
    assert len(frames) == len(COLORS) and frames[0].shape == (48, 64, 3)
    for frame, color in zip(frames, COLORS, strict=True):
        assert error(frame, 255 - np.full(frame.shape, color, np.uint8)) < H264
    last = progress[-1]
    assert last.stage == "done" and last.job_id == result.job_id
    assert last.sent == last.to_send > path.stat().st_size
    assert last.received == last.to_receive == len(result.data or b"")
    assert {p.status for p in progress if p.stage == "wait"} >= {"pending", "processing"}


def test_a_restyle_job_by_hand(emu: Emulator, account: DecartClient) -> None:
    emu.faults.job_pace = 0.3
    job = account.queue.submit(
        models.video("lucy-restyle-2"),
        data=clip(COLORS[:1]),
        reference_image=np.full((10, 10, 3), (10, 240, 90), np.uint8),  # flat: any scale
    )
    assert job.status == "pending"
    with pytest.raises(QueueResultError) as early:
        account.queue.result(job.job_id)
    assert early.value.data["status"] == 409
    wait_until(lambda: account.queue.status(job.job_id).status == "completed", 10, "completion")
    [frame] = decoded(account.queue.result(job.job_id))
    flat = np.full(frame.shape, COLORS[0], np.uint8)
    expected = transforms.blend(flat, np.array((10, 240, 90), np.uint8))
    assert error(frame, expected) < H264


def test_a_failed_job_is_a_result_and_a_busy_queue_an_error(
    emu: Emulator, account: DecartClient
) -> None:
    emu.faults = Faults(job_pace=0.05, fail_jobs=1, refuse_jobs=1)
    data = clip(COLORS[:1])
    with pytest.raises(QueueSubmitError) as busy:
        account.queue.submit("lucy-2.5", prompt="", data=data)
    assert busy.value.data["status"] == 429 and "queue is full" in busy.value.message
    result = account.queue.submit_and_poll("lucy-2.5", prompt="", data=data, poll_interval=0.05)
    assert (result.status, result.error, result.data) == ("failed", "Job failed", None)
    with pytest.raises(QueueResultError) as content:
        account.queue.result(result.job_id)
    assert content.value.data["status"] == 409
    again = account.queue.submit_and_poll("lucy-2.5", prompt="", data=data, poll_interval=0.05)
    assert again.ok  # each fault counted down once


def test_errors_carry_codes_and_nothing_is_sent_for_a_bad_input(
    emu: Emulator, account: DecartClient
) -> None:
    rgb, data = gradient(), clip(COLORS[:1])
    stranger = DecartClient(api_key="not-the-key", base_url=emu.rest_url)
    with pytest.raises(InvalidAPIKeyError) as bad_key:
        stranger.process(model="lucy-image-2", prompt="x", data=rgb)
    assert bad_key.value.data["status"] == 401
    with pytest.raises(InvalidAPIKeyError):
        stranger.queue.submit("lucy-2.1", prompt="x", data=data)
    noise = np.random.default_rng(5).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    with pytest.raises(InvalidAPIKeyError):  # refused before its 3 MB are read
        stranger.process(model="lucy-image-2", prompt="x", data=noise)

    sent = emu.batch.requests
    with pytest.raises(ModelNotFoundError):
        account.process(model="lucy-image-9", prompt="x", data=rgb)
    with pytest.raises(InvalidInputError, match="not a picture"):
        account.process(model="lucy-image-2", prompt="x", data=b"garbage")
    with pytest.raises(InvalidInputError, match="needs a prompt"):
        account.queue.submit_and_poll("lucy-2.1", data=data)
    with pytest.raises(InvalidInputError, match="not strength"):
        account.queue.submit("lucy-2.1", prompt="x", data=data, strength=3)
    with pytest.raises(InvalidOptionsError, match="takes image models"):
        account.process(model=models.video("lucy-2.1"), prompt="x", data=rgb)
    assert emu.batch.requests == sent, "a request left before its inputs were checked"

    custom = ModelDefinition("lucy-image-9", "/v1/generate/lucy-image-9", inputs="image")
    with pytest.raises(ModelNotFoundError) as unknown:
        account.process(model=custom, prompt="x", data=rgb)
    assert unknown.value.data["status"] == 404
    with pytest.raises(QueueStatusError) as no_job:
        account.queue.status("no-such-job")
    assert no_job.value.data["status"] == 404 and "Job not found" in no_job.value.message
    with pytest.raises(QueueResultError) as no_content:
        account.queue.result("no-such-job")
    assert no_content.value.data["status"] == 404


def test_a_wait_ends_at_its_timeout_with_the_job_id(emu: Emulator, account: DecartClient) -> None:
    emu.faults.job_pace = 60.0
    start = time.monotonic()
    with pytest.raises(QueueTimeoutError) as late:
        account.queue.submit_and_poll(
            "lucy-2.1", prompt="x", data=clip(COLORS[:1]), timeout=1.0, poll_interval=0.1
        )
    assert time.monotonic() - start < 3.0
    assert late.value.data["status"] == "pending" and isinstance(late.value, TimeoutError)
    assert account.queue.status(late.value.data["job_id"]).status == "pending"


def test_client_tokens_verify_against_the_emulators_jwks(
    emu: Emulator, account: DecartClient
) -> None:
    from decart_sync.errors import TokenVerifyError

    created = account.tokens.create(expires_in=60, allowed_models=["lucy-2.1"])
    assert created.token
    verified = account.tokens.verify(created.token, jwks_url=emu.jwks_url)
    assert verified.allowed_models == ["lucy-2.1"] and verified.user_id
    assert account.tokens.decode(created.token).claims == verified.claims
    head, _, signature = created.token.split(".")
    wider = {**verified.claims, "models": ["lucy-2.1", "lucy-image-2"]}
    body = base64.urlsafe_b64encode(json.dumps(wider).encode()).rstrip(b"=").decode()
    checks = [
        (f"{head}.{body}.{signature}", {}, "the signature does not match"),
        (created.token, {"audience": "https://elsewhere"}, "audience"),
        (created.token, {"issuer": "https://elsewhere"}, "issuer"),
        (created.token, {"leeway": -3600}, "expired"),
        (created.token, {"jwks_url": emu.rest_url + "/nowhere"}, "could not fetch the JWKS"),
    ]
    for token, options, match in checks:
        with pytest.raises(TokenVerifyError, match=match) as caught:
            account.tokens.verify(token, **{"jwks_url": emu.jwks_url, **options})
        assert caught.value.code == "TOKEN_VERIFY_ERROR"
    # The signed twin is a key too; the token's models bound what it may run.
    holder = DecartClient(api_key=created.token, base_url=emu.rest_url)
    job = holder.queue.submit("lucy-2.1", prompt="", data=clip(COLORS[:1]))
    assert job.status == "pending"
    with pytest.raises(InvalidAPIKeyError) as refused:
        holder.process(model="lucy-image-2", prompt="x", data=gradient())
    assert refused.value.data["status"] == 403


def test_the_docs_pages_examples_run(tmp_path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "batch.md").read_text(), re.S)
    assert len(blocks) == 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECART_")}
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"{block}\n{done.stderr[-3000:]}"
    assert decoded((tmp_path / "sepia.png").read_bytes())[0].shape == (360, 640, 3)
    assert len(decoded((tmp_path / "grayscale.mp4").read_bytes())) == 20
