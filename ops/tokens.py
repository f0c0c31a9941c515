"""Development identity: a signing key, the JWKS the edge verifies tokens with, and tokens.

    python -m ops.tokens --role customer --sub alice     # the token is the last line
    make token ROLE=baker SUB=bob

The key is made on first use under var/keys (never committed) and `make run` points
Envoy's jwt_authn filter at var/keys/jwks.json. In Kubernetes the JWKS comes from a
Secret and tokens from a real identity provider with the same issuer and audience.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ops.envoy_config import AUDIENCE, DEV_ISSUER, DEV_JWKS
from servicekit.identity import Role

ROLES = tuple(role.value for role in Role)
ALGORITHM = "ES256"
KEY_ID = "bread-dev-1"


@dataclass(frozen=True)
class DevIssuer:
    """Signs development tokens with a key kept in `directory`."""

    directory: Path = DEV_JWKS.parent

    @property
    def private_key_path(self) -> Path:
        return self.directory / "signing-key.pem"

    @property
    def jwks_path(self) -> Path:
        return self.directory / "jwks.json"

    def ensure_keys(self) -> DevIssuer:
        """Make the key and its JWKS unless they exist."""
        if self.private_key_path.exists() and self.jwks_path.exists():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(self.private_key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(pem)
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        public.update(kid=KEY_ID, alg=ALGORITHM, use="sig")
        self.jwks_path.write_text(json.dumps({"keys": [public]}, indent=2))
        return self

    def token(self, subject: str, role: str, ttl_seconds: int = 8 * 3600) -> str:
        """A token for subject in role, valid for ttl_seconds (negative: expired)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        now = int(time.time())
        claims = {
            "iss": DEV_ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "role": role,
            "iat": now,
            "exp": now + ttl_seconds,
        }
        key = self.ensure_keys().private_key_path.read_bytes()
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": KEY_ID})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=ROLES, default="customer")
    parser.add_argument("--sub", default="alice", help="the subject: who the caller is")
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="seconds the token is valid")
    args = parser.parse_args()
    issuer = DevIssuer()
    print(f"# {args.role} {args.sub}, signed with {issuer.private_key_path}")
    print(issuer.token(args.sub, args.role, args.ttl))


if __name__ == "__main__":
    main()
