"""ops.k8s_build, the kustomization `make k8s-render` and `make deploy` write: it refuses what
would render or deploy a broken gateway, and says what to do instead."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from ops import k8s_build
from tests.k8s.manifests import K8S


@pytest.fixture
def k8s(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of k8s/ without the operator's files of prod, whether this checkout has them."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    for name in ("credentials.env", "jwks.json"):
        (copy / "overlays" / "prod" / name).unlink(missing_ok=True)
    return copy


def with_examples(overlay: pathlib.Path) -> pathlib.Path:
    for example in overlay.glob("*.example"):
        shutil.copy(example, example.with_suffix(""))
    return overlay


def test_prod_without_the_operators_files_is_refused(k8s: pathlib.Path) -> None:
    prod = k8s / "overlays" / "prod"
    with pytest.raises(k8s_build.BuildError, match=r"credentials.env is missing: see .*\.example"):
        k8s_build.write(prod, k8s / "out", "bread:1")
    shutil.copy(prod / "credentials.env.example", prod / "credentials.env")
    with pytest.raises(k8s_build.BuildError, match=r"jwks.json is missing: see jwks.json.example"):
        k8s_build.write(prod, k8s / "out", "bread:1")


def test_the_jwks_secret_comes_from_exactly_one_place(k8s: pathlib.Path) -> None:
    jwks = k8s / "jwks.json"
    jwks.write_text('{"keys": []}')
    with pytest.raises(k8s_build.BuildError, match="generates bread-jwks itself"):
        k8s_build.write(with_examples(k8s / "overlays" / "prod"), k8s / "out", "bread:1", jwks)
    with pytest.raises(k8s_build.BuildError, match="no bread-jwks Secret"):
        k8s_build.write(k8s / "overlays" / "dev", k8s / "out", "bread:1")


def test_dev_gets_the_given_jwks_in_its_namespace(k8s: pathlib.Path) -> None:
    jwks = k8s / "keys.json"
    jwks.write_text('{"keys": []}')
    out = k8s / "out"
    path = k8s_build.write(k8s / "overlays" / "dev", out, "ghcr.io/o/bread:abc", jwks)
    written = json.loads(path.read_text())
    assert written["resources"] == ["../overlays/dev"]
    assert written["images"] == [{"name": "bread", "newName": "ghcr.io/o/bread", "newTag": "abc"}]
    assert written["namespace"] == "bread-dev"
    (secret,) = written["secretGenerator"]
    assert (secret["name"], secret["files"]) == ("bread-jwks", ["jwks.json"])
    assert (out / "jwks.json").read_text() == jwks.read_text()


@pytest.mark.parametrize("image", ["bread", "bread:", "registry:5000/bread", ":tag"])
def test_image_must_be_name_and_tag(k8s: pathlib.Path, image: str) -> None:
    overlay = with_examples(k8s / "overlays" / "prod")
    with pytest.raises(k8s_build.BuildError, match="NAME:TAG"):
        k8s_build.write(overlay, k8s / "out", image)


def test_deploy_refuses_the_placeholders_of_prod(k8s: pathlib.Path) -> None:
    """The committed issuer and the example JWKS would turn away every token."""
    prod = with_examples(k8s / "overlays" / "prod")
    with pytest.raises(k8s_build.BuildError, match="is the example"):
        k8s_build.check_deployable(prod)
    keys = json.loads((prod / "jwks.json").read_text())
    keys["keys"][0]["kid"] = "idp-2026-01"
    (prod / "jwks.json").write_text(json.dumps(keys))
    with pytest.raises(k8s_build.BuildError, match="placeholder issuer"):
        k8s_build.check_deployable(prod)
    config = prod / "envoy.yaml"
    config.write_text(
        config.read_text().replace("https://identity.example.invalid/", "https://sso.bread.test/")
    )
    k8s_build.check_deployable(prod)
    k8s_build.check_deployable(k8s / "overlays" / "dev")
