"""The gateway's Envoy config: reproducible from its arguments, valid for Envoy, and verifying
tokens with the keys of the overlay's JWKS Secret, for the overlay's issuer."""

from __future__ import annotations

import json
import pathlib
import shlex
import subprocess
import sys

import pytest

from ops.envoy_config import AUDIENCE, DEV_ISSUER, WEB_FILES, envoy_binary
from tests.k8s.manifests import (
    K8S,
    OVERLAYS,
    ROOT,
    Manifests,
    Obj,
    containers,
    envoy_config,
    envoy_config_text,
    pod_spec,
)

LOCAL_DESCRIPTOR = ROOT / "build" / "bread.pb"
LOCAL_OPENAPI = ROOT / "build" / "openapi.json"
LOCAL_WEB = ROOT / "web"


def render_args(overlay: str) -> list[str]:
    """What `make k8s-envoy` passes: the shared arguments, then the overlay's."""
    paths = [K8S / "base" / "gateway" / "envoy.args", K8S / "overlays" / overlay / "envoy.args"]
    lines = [line for path in paths for line in path.read_text().splitlines()]
    return [arg for line in lines if not line.startswith("#") for arg in shlex.split(line)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_committed_config_is_a_fresh_render(overlay: str, tmp_path: pathlib.Path) -> None:
    fresh = tmp_path / "envoy.yaml"
    subprocess.run(
        [sys.executable, "-m", "ops.envoy_config", "--out", str(fresh), *render_args(overlay)],
        cwd=ROOT,
        check=True,
    )
    committed = (K8S / "overlays" / overlay / "envoy.yaml").read_text()
    assert fresh.read_text() == committed, "run `make k8s-envoy` and commit the result"


def test_configmap_passes_envoy_validate(manifests: Manifests, tmp_path: pathlib.Path) -> None:
    """`envoy --mode validate` on the ConfigMap's envoy.yaml, exactly as mounted, except the
    files the pod has and this machine does not: the descriptor set, the OpenAPI description
    and the web page, where the init containers put them, and the JWKS, from the Secret the
    pod mounts (jwt_authn reads it at start)."""
    deployment = manifests.get("Deployment", "gateway")
    (envoy,) = containers(deployment)
    mounted = {m["name"]: m["mountPath"] for m in envoy["volumeMounts"]}
    inits = {c["name"]: c for c in pod_spec(deployment)["initContainers"]}
    assert set(inits) == {"descriptors", "web"}
    cp, *built, copied_to = inits["descriptors"]["command"]
    assert cp == "cp" and copied_to.rstrip("/") == mounted["descriptors"]
    assert built == ["/app/build/bread.pb", "/app/build/openapi.json"]
    # The page's files: all of /app/web, into the volume Envoy mounts.
    assert inits["web"]["command"] == ["cp", "-R", "/app/web/.", mounted["web"]]
    assert {m["mountPath"] for m in inits["web"]["volumeMounts"]} == {mounted["web"]}

    text = envoy_config_text(manifests)
    for key, in_pod, local in (
        ("proto_descriptor", f"{mounted['descriptors']}/bread.pb", LOCAL_DESCRIPTOR),
        ("filename", f"{mounted['descriptors']}/openapi.json", LOCAL_OPENAPI),
    ):
        line = f'{key}: "{in_pod}"'
        assert text.count(line) == 1, line
        text = text.replace(line, f'{key}: "{local}"')
    for name in WEB_FILES.values():
        page_file = f'filename: "{mounted["web"]}/{name}"'
        assert text.count(page_file) == 1, name
        text = text.replace(page_file, f'filename: "{LOCAL_WEB / name}"')
    jwks_path, jwks = mounted_jwks(manifests)
    local_jwks = tmp_path / "jwks.json"
    local_jwks.write_text(jwks)
    in_pod = f"local_jwks: {{filename: {json.dumps(jwks_path)}}}"
    assert text.count(in_pod) == 1
    text = text.replace(in_pod, f"local_jwks: {{filename: {json.dumps(str(local_jwks))}}}")
    config = tmp_path / "envoy.yaml"
    config.write_text(text)
    assert f"--config-path={mounted['config']}/envoy.yaml" in envoy["args"]

    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gateway_image_matches_the_envoy_it_is_validated_with(manifests: Manifests) -> None:
    (envoy,) = containers(manifests.get("Deployment", "gateway"))
    version = subprocess.run(
        [envoy_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    tag = envoy["image"].rsplit(":", 1)[1]
    assert f"/{tag.removeprefix('v')}/" in version


def test_listeners_are_reachable_in_the_pod_and_admin_is_not(manifests: Manifests) -> None:
    """The edge for clients and the mesh for order's pods listen on the pod's address; the
    admin API (drain, stats, config dump) only on loopback, for the preStop hook."""
    config = envoy_config(manifests)
    addresses = {
        listener["name"]: listener["address"]["socket_address"]["address"]
        for listener in config["static_resources"]["listeners"]
    }
    assert addresses == {"edge": "0.0.0.0", "mesh": "0.0.0.0"}
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_tokens_are_verified_with_the_overlays_secret(manifests: Manifests) -> None:
    """The JWKS file the config names is a key of a Secret the pod mounts read-only, holding
    a JWKS of public keys only."""
    provider = jwt_provider(manifests)
    assert provider["audiences"] == [AUDIENCE]
    path, text = mounted_jwks(manifests)
    assert provider["local_jwks"] == {"filename": path}
    keys = json.loads(text)["keys"]
    assert keys
    for key in keys:
        # A private EC/RSA key has "d"; an octet (shared secret) key would sign as well.
        assert "d" not in key and key["kty"] in ("EC", "RSA", "OKP"), key.get("kid")


def test_dev_verifies_the_development_tokens(dev: Manifests) -> None:
    """`make token` against a dev cluster: the issuer of ops.tokens, the JWKS of its key
    (the render's throwaway key stands in for var/keys)."""
    assert jwt_provider(dev)["issuer"] == DEV_ISSUER
    assert dev.build_jwks is not None
    assert mounted_jwks(dev)[1] == dev.build_jwks


def test_prod_never_accepts_development_tokens(prod: Manifests) -> None:
    """Another issuer, and its JWKS is the overlay's own (jwks.json), never the dev key."""
    assert jwt_provider(prod)["issuer"] != DEV_ISSUER
    assert prod.build_jwks is None
    overlay = K8S / "overlays" / "prod"
    assert "/jwks.json" in (overlay / ".gitignore").read_text().split()
    assert mounted_jwks(prod)[1] == (overlay / "jwks.json.example").read_text()


def jwt_provider(manifests: Manifests) -> Obj:
    config = envoy_config(manifests)
    (edge,) = [x for x in config["static_resources"]["listeners"] if x["name"] == "edge"]
    manager = edge["filter_chains"][0]["filters"][0]["typed_config"]
    (jwt,) = [f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn"]
    ((_, provider),) = jwt["typed_config"]["providers"].items()
    return dict(provider)


def mounted_jwks(manifests: Manifests) -> tuple[str, str]:
    """(path in the container, content) of the JWKS file the config names, through the
    gateway's volume mounts."""
    path = jwt_provider(manifests)["local_jwks"]["filename"]
    deployment = manifests.get("Deployment", "gateway")
    (envoy,) = containers(deployment)
    directory, _, name = path.rpartition("/")
    (mount,) = [m for m in envoy["volumeMounts"] if m["mountPath"].rstrip("/") == directory]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    (item,) = [i for i in secret.get("items", []) if i["path"] == name]
    return path, manifests.secret_data(secret["secretName"])[item["key"]]
