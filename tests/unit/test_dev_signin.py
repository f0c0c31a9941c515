"""The development sign-in: what it signs, what it refuses, which topologies have one."""

from __future__ import annotations

import json
import pathlib
from dataclasses import replace

import jwt
import pytest

from ops.dev_signin import SignInError, from_this_machine, sign_in
from ops.envoy_config import AUDIENCE, DEV_ISSUER, EnvoyTopology, render
from ops.tokens import DevIssuer


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer(tmp_path_factory.mktemp("keys")).ensure_keys()


def claims(issuer: DevIssuer, token: str) -> dict[str, object]:
    (key,) = json.loads(issuer.jwks_path.read_text())["keys"]
    public = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(key))
    return dict(jwt.decode(token, public, algorithms=["ES256"], audience=AUDIENCE))  # type: ignore[arg-type]


def test_signs_a_token_for_the_name_and_role(issuer: DevIssuer) -> None:
    answer = sign_in(issuer, b'{"sub": "alice", "role": "baker"}', ttl_seconds=60)
    assert answer["sub"] == "alice" and answer["role"] == "baker" and answer["expiresIn"] == 60
    got = claims(issuer, answer["token"])
    assert got["iss"] == DEV_ISSUER and got["sub"] == "alice" and got["role"] == "baker"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "JSON"),
        (b"[]", "object"),
        (b'{"sub": "", "role": "customer"}', "name"),
        (b'{"sub": "a b", "role": "customer"}', "name"),
        (b'{"sub": "x\\u0000", "role": "customer"}', "name"),
        (b'{"sub": "' + b"a" * 65 + b'", "role": "customer"}', "name"),
        (b'{"sub": 7, "role": "customer"}', "name"),
        (b'{"sub": "alice", "role": "king"}', "role"),
        (b'{"sub": "alice"}', "role"),
    ],
)
def test_refuses_what_is_not_a_name_and_a_role(issuer: DevIssuer, body: bytes, says: str) -> None:
    with pytest.raises(SignInError) as refused:
        sign_in(issuer, body)
    assert refused.value.status == 400 and refused.value.code == 3
    assert says in refused.value.message


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("127.8.0.1", True),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("", False),
        (None, False),
        ("127.0.0.1, 10.0.0.1", False),
        ("localhost", False),
    ],
)
def test_answers_this_machine_only(peer: str | None, allowed: bool) -> None:
    assert from_this_machine(peer) is allowed


def config_lines(text: str) -> str:
    """The rendered config without its comments."""
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))


def test_only_a_topology_with_a_dev_signin_routes_to_one() -> None:
    without = config_lines(render(EnvoyTopology()))
    assert "dev-token" not in without and "dev_signin" not in without

    with_it = render(EnvoyTopology(dev_signin=("127.0.0.1", 8085)))
    assert "- {match: {path: /auth/dev-token}, route: {cluster: dev_signin" in with_it
    assert "- match: {path: /auth/dev-token}" in with_it  # no token needed for it
    assert "name: dev_signin" in with_it and "port_value: 8085" in with_it


def test_the_page_files_are_read_from_web_root() -> None:
    text = render(EnvoyTopology(web_root=pathlib.Path("/web")))
    for name in ("index.html", "app.js", "style.css"):
        assert f'filename: "/web/{name}"' in text


@pytest.mark.parametrize(
    "changes",
    [
        {"web_root": pathlib.Path("web")},  # relative: Envoy's working directory decides
        {"dev_signin": ("localhost", 8085)},  # a name, not an address
        {"dev_signin": ("127.0.0.1", 0)},
    ],
)
def test_render_refuses_an_unsound_page_or_sign_in(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render(replace(EnvoyTopology(), **changes))  # type: ignore[arg-type]
