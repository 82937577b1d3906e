"""The emulator's signing key: client tokens as Ed25519 JWTs, and the JWKS to check them.

As the platform does, each client token comes with a signed ``token``
(``alg: EdDSA``, ``kid`` naming the key) whose issuer and audience are the
platform's URL, so a verifier needs only ``jwks_url`` pointed at the emulator
(``GET /api/auth/jwks`` on its REST port). A new key per emulator: its tokens
verify against its own JWKS only.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PLATFORM_URL = "https://platform.decart.ai"
JWKS_PATH = "/api/auth/jwks"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    """One Ed25519 key: `sign` makes a JWT, `jwks` publishes the public half."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        self.kid = f"emulator-{secrets.token_hex(6)}"

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "EdDSA", "typ": "JWT", "kid": self.kid}
        head = b64url(json.dumps(header, separators=(",", ":")).encode())
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = self._key.sign(f"{head}.{body}".encode("ascii"))
        return f"{head}.{body}.{b64url(signature)}"

    def jwks(self) -> dict[str, Any]:
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = {"kty": "OKP", "crv": "Ed25519", "x": b64url(public), "kid": self.kid}
        return {"keys": [{**key, "alg": "EdDSA", "use": "sig"}]}

    def __repr__(self) -> str:
        return f"<Signer kid={self.kid}>"
