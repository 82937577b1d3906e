"""Drives the official ``decart`` 0.2.4 SDK's image and video calls, unchanged, against
the emulator's REST port.

Runs in the official SDK's own virtualenv (never this package's); writes what
it got into OUT_DIR and prints one JSON line of what it saw. Usage:
``python official_batch.py REST_URL KEY PICTURE VIDEO OUT_DIR``. The emulator is
expected to fail the first job (``fail_jobs=1``) and complete the second.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from decart import DecartClient, models
from decart.errors import DecartSDKError


async def main(url: str, key: str, picture: Path, video: Path, out: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with DecartClient(api_key=key, base_url=url) as client:
        image = await client.process(
            {
                "model": models.image("lucy-image-2"),
                "prompt": "invert",
                "data": picture,  # a Path: read by the SDK
                "seed": 7,
                "enhance_prompt": False,
            }
        )
        (out / "official.png").write_bytes(image)

        failed = await client.queue.submit_and_poll(
            {"model": models.video("lucy-2.1"), "prompt": "", "data": video.read_bytes()}
        )
        seen["failed"] = {"status": failed.status, "error": getattr(failed, "error", None)}

        statuses: list[str] = []
        with open(video, "rb") as data:
            result = await client.queue.submit_and_poll(
                {
                    "model": models.video("lucy-2.1"),
                    "prompt": "grayscale",
                    "data": data,  # a file object
                    "resolution": "720p",
                    "on_status_change": lambda job: statuses.append(job.status),
                }
            )
        seen["statuses"] = statuses
        seen["completed"] = result.status
        if result.status == "completed":
            (out / "official.mp4").write_bytes(result.data)

        token = await client.tokens.create(expires_in=120, allowed_models=["lucy-2.1"])
        claims = client.tokens.decode(token.token)
        seen["token"] = {
            "api_key_prefix": token.api_key[:3],
            "user_id": claims.user_id,
            "allowed_models": claims.allowed_models,
            "pool": claims.pool,
            "expires_at": claims.expires_at.timestamp(),
        }
    async with DecartClient(api_key="ek_not-a-live-token", base_url=url) as stranger:
        try:
            await stranger.process(
                {"model": models.image("lucy-image-2"), "prompt": "x", "data": picture}
            )
            seen["bad_key"] = "accepted"
        except DecartSDKError as exc:
            seen["bad_key"] = f"{type(exc).__name__}: {exc}"
    return seen


if __name__ == "__main__":
    rest_url, api_key, picture_path, video_path, out_dir = sys.argv[1:6]
    report = asyncio.run(
        main(rest_url, api_key, Path(picture_path), Path(video_path), Path(out_dir))
    )
    print(json.dumps(report))
