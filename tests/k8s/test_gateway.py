"""The gateway's Envoy config: reproducible from its arguments, and valid for Envoy."""

from __future__ import annotations

import pathlib
import shlex
import subprocess
import sys

from ops.envoy_config import WEB_FILES, envoy_binary
from ops.tokens import DevIssuer
from tests.k8s.manifests import K8S, ROOT, Manifests, containers, envoy_config_text, pod_spec

GATEWAY = K8S / "base" / "gateway"
LOCAL_DESCRIPTOR = ROOT / "build" / "bread.pb"
LOCAL_WEB = ROOT / "web"


def render_args() -> list[str]:
    lines = (GATEWAY / "envoy.args").read_text().splitlines()
    return [arg for line in lines if not line.startswith("#") for arg in shlex.split(line)]


def test_committed_config_is_a_fresh_render(tmp_path: pathlib.Path) -> None:
    fresh = tmp_path / "envoy.yaml"
    subprocess.run(
        [sys.executable, "-m", "ops.envoy_config", "--out", str(fresh), *render_args()],
        cwd=ROOT,
        check=True,
    )
    committed = (GATEWAY / "envoy.yaml").read_text()
    assert fresh.read_text() == committed, "run `make k8s-envoy` and commit the result"


def test_configmap_passes_envoy_validate(manifests: Manifests, tmp_path: pathlib.Path) -> None:
    """`envoy --mode validate` on the ConfigMap's envoy.yaml, exactly as mounted, except the
    files Envoy reads at start that only the pod has: the descriptor set and the web page,
    which the init containers copy to the paths the config names, and the JWKS."""
    deployment = manifests.get("Deployment", "gateway")
    (envoy,) = containers(deployment)
    mounted = {m["name"]: m["mountPath"] for m in envoy["volumeMounts"]}
    inits = {c["name"]: c for c in pod_spec(deployment)["initContainers"]}
    assert set(inits) == {"descriptors", "web"}
    copied_to = pathlib.PurePosixPath(inits["descriptors"]["command"][-1])
    assert str(copied_to.parent) == mounted["descriptors"]
    # The page's files: all of /app/web, into the volume Envoy mounts.
    assert inits["web"]["command"] == ["cp", "-R", "/app/web/.", mounted["web"]]
    assert {m["mountPath"] for m in inits["web"]["volumeMounts"]} == {mounted["web"]}

    text = envoy_config_text(manifests)
    in_pod = f'proto_descriptor: "{copied_to}"'
    assert text.count(in_pod) == 1
    text = text.replace(in_pod, f'proto_descriptor: "{LOCAL_DESCRIPTOR}"')
    for name in WEB_FILES.values():
        page_file = f'filename: "{mounted["web"]}/{name}"'
        assert text.count(page_file) == 1, name
        text = text.replace(page_file, f'filename: "{LOCAL_WEB / name}"')
    jwks = 'local_jwks: {filename: "/etc/bread/jwks/jwks.json"}'
    assert text.count(jwks) == 1
    keys = DevIssuer(tmp_path / "keys").ensure_keys().jwks_path
    text = text.replace(jwks, f'local_jwks: {{filename: "{keys}"}}')
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
