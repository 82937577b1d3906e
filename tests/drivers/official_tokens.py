"""Drives today's official ``decart`` SDK's REST calls, unchanged, against the emulator.

Runs in the official SDK's own virtualenv (never this package's); prints one JSON
line of what the SDK saw. Usage: ``python official_tokens.py REST_URL KEY``.
decart 0.2.4's REST calls on ``base_url`` are ``tokens.create`` (here), ``process``
and ``queue``; its viewers' ``watch-stream`` goes to the realtime URL
(official_livekit_viewer.py).
"""

from __future__ import annotations

import asyncio
import json
import sys

from decart import DecartClient
from decart.errors import TokenCreateError

ORIGIN = "https://app.example"


async def main(rest_url: str, key: str) -> dict:
    seen: dict = {}
    async with DecartClient(api_key=key, base_url=rest_url) as account:
        plain = await account.tokens.create()
        scoped = await account.tokens.create(
            metadata={"role": "viewer"},
            expires_in=120,
            allowed_models=["lucy-2.1"],
            allowed_origins=[ORIGIN],
            constraints={"realtime": {"maxSessionDuration": 300}},
        )
        claims = account.tokens.decode(scoped.token)
        seen["plain"] = plain.model_dump()
        seen["scoped"] = scoped.model_dump()
        seen["claims"] = claims.model_dump(mode="json")
    # A client token, in either form, may not make more of them.
    for form in ("api_key", "token"):
        async with DecartClient(api_key=getattr(scoped, form), base_url=rest_url) as page:
            try:
                await page.tokens.create()
                seen[f"refused_with_{form}"] = None
            except TokenCreateError as exc:
                seen[f"refused_with_{form}"] = exc.data.get("status")
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
