"""Development sign-in: `POST /auth/dev-token {"sub": "alice", "role": "customer"}` -> `{"token"}`.

    python -m ops.dev_signin --port 8085          # `make run` starts it; Envoy routes to it

A token for any name and role, signed with the development key (ops.tokens.DevIssuer), so the
web page can sign a person in without an identity provider. It exists only where Envoy's
topology has `dev_signin` (`make run`, the tests), never in Kubernetes. It listens on loopback
for Envoy alone and answers only people on this machine: Envoy's route sets x-bread-peer-address
to the address of the connection it got the request on (overwriting any a client sent), and that
must be loopback.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ops.envoy_config import DEV_JWKS
from ops.tokens import ROLES, DevIssuer

PATH = "/auth/dev-token"
DEFAULT_PORT = 8085
# A development session: a working day.
TTL_SECONDS = 8 * 3600
MAX_BODY = 4096
# Letters, digits and . _ @ - : a name that reads well in logs and Mypage.
SUBJECT = re.compile(r"[\w.@-]{1,64}")


class SignInError(Exception):
    def __init__(self, status: HTTPStatus, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad_request(message: str) -> SignInError:
    return SignInError(HTTPStatus.BAD_REQUEST, 3, message)  # INVALID_ARGUMENT


def sign_in(issuer: DevIssuer, body: bytes, ttl_seconds: int = TTL_SECONDS) -> dict[str, Any]:
    """The answer to a sign-in request body; SignInError when it is not a sound one."""
    try:
        request = json.loads(body)
    except ValueError:
        raise bad_request('the body must be JSON: {"sub": ..., "role": ...}') from None
    if not isinstance(request, dict):
        raise bad_request("the body must be a JSON object")
    subject, role = request.get("sub"), request.get("role")
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise bad_request("the name must be 1 to 64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise bad_request(f"the role must be one of {', '.join(ROLES)}")
    token = issuer.token(subject, role, ttl_seconds)
    return {"token": token, "sub": subject, "role": role, "expiresIn": ttl_seconds}


PEER_HEADER = "x-bread-peer-address"


def from_this_machine(peer: str | None) -> bool:
    """Whether the address Envoy received the request from is loopback. Not x-forwarded-for:
    for a loopback peer Envoy appends its own host's address there. No header: not through
    Envoy, refused too."""
    try:
        return ipaddress.ip_address((peer or "").strip()).is_loopback
    except ValueError:
        return False


class Handler(BaseHTTPRequestHandler):
    server: SignInServer
    protocol_version = "HTTP/1.1"  # keep-alive with Envoy

    def do_POST(self) -> None:  # http.server's naming
        try:
            self._answer(HTTPStatus.OK, self._sign_in())
        except SignInError as error:
            self._answer(
                error.status, {"code": error.code, "message": error.message, "details": []}
            )

    def do_GET(self) -> None:
        self._answer(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"code": 12, "message": f"POST {PATH} with {{sub, role}}", "details": []},
        )

    def _sign_in(self) -> dict[str, Any]:
        # The body first, whatever the answer, so the connection can carry the next request.
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            raise SignInError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, 8, "the body is too large")
        body = self.rfile.read(length)
        if self.path.partition("?")[0] != PATH:
            raise SignInError(HTTPStatus.NOT_FOUND, 5, "no such API")
        if not from_this_machine(self.headers.get(PEER_HEADER)):
            raise SignInError(
                HTTPStatus.FORBIDDEN, 7, "the development sign-in answers this machine only"
            )
        return sign_in(self.server.issuer, body)

    def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("cache-control", "no-store")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # One line per sign-in on stderr, without tokens (they are only in bodies).
        sys.stderr.write(f"dev_signin: {self.address_string()} {format % args}\n")


class SignInServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], issuer: DevIssuer) -> None:
        super().__init__(address, Handler)
        self.issuer = issuer.ensure_keys()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.dev_signin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="where Envoy reaches it")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--keys", type=Path, default=DEV_JWKS.parent, help="directory of the development key"
    )
    args = parser.parse_args(argv)
    server = SignInServer((args.host, args.port), DevIssuer(args.keys))
    print(f"dev_signin: POST {PATH} on {args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
