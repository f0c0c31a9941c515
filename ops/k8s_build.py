"""The throwaway kustomization that `make k8s-render` and `make deploy` apply on top of an overlay.

    python -m ops.k8s_build --overlay dev --image bread:dev --out build/k8s/dev [--deploy]

It sets the bread image, so nothing under k8s/ is edited. For the dev overlay it also adds
the gateway's JWKS Secret from the development key (ops.tokens, under var/keys, made on
first use): that key is never committed, and kustomize reads files only from inside the
kustomization, so the JWKS is copied next to the kustomization written here. Any other
overlay brings its own Secret `bread-jwks` (prod: from its git-ignored jwks.json).

Before writing anything it refuses an overlay whose generators read a file that is missing
(prod's credentials.env and jwks.json are the operator's; see the .example next to each).
With --deploy it also refuses a gateway config whose JWT issuer is still a placeholder (a
.invalid host name) or whose JWKS is the example's, because such a gateway would turn away
every token.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ops.tokens import DevIssuer

REPO_ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = REPO_ROOT / "k8s" / "overlays"
# The Secret the gateway mounts its JWKS from, and the key (file name) it reads.
JWKS_SECRET = "bread-jwks"
JWKS_KEY = "jwks.json"
# The key id of k8s/overlays/prod/jwks.json.example (whose private key nobody has).
EXAMPLE_KID_PREFIX = "EXAMPLE-"
# The overlays that verify tokens with the development key of this machine.
DEV_KEY_OVERLAYS = ("dev",)


class BuildError(Exception):
    """The overlay cannot be rendered or deployed as it is; the message says why."""


def write(overlay: Path, out: Path, image: str, jwks: Path | None = None) -> Path:
    """Write out/kustomization.yaml: overlay with image as the bread image and, given jwks,
    the Secret bread-jwks from a copy of that file. Returns the kustomization's path."""
    kustomization = _load(overlay)
    _check_inputs(overlay, kustomization)
    name, tag = _image(image)
    own_jwks = JWKS_SECRET in _generated(kustomization, "secretGenerator")
    if own_jwks and jwks is not None:
        raise BuildError(f"{overlay.name} generates {JWKS_SECRET} itself: no JWKS to add")
    if not own_jwks and jwks is None:
        raise BuildError(f"{overlay.name} has no {JWKS_SECRET} Secret: the gateway needs one")

    out.mkdir(parents=True, exist_ok=True)
    # kustomize refuses absolute resource paths.
    resource = os.path.relpath(overlay.resolve(), out.resolve())
    content: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [resource],
        "images": [{"name": "bread", "newName": name, "newTag": tag}],
    }
    if jwks is not None:
        shutil.copyfile(jwks, out / JWKS_KEY)
        content.update(
            # Where the overlay puts everything; otherwise the Secret would have no namespace.
            namespace=kustomization["namespace"],
            secretGenerator=[
                {
                    "name": JWKS_SECRET,
                    "files": [JWKS_KEY],
                    "options": {"labels": {"app.kubernetes.io/part-of": "bread"}},
                }
            ],
        )
    path = out / "kustomization.yaml"
    # JSON is YAML; the comment-free file is not meant to be read.
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def check_deployable(overlay: Path) -> None:
    """Refuse a gateway config that still names a placeholder issuer, and the example JWKS."""
    jwks = overlay / JWKS_KEY
    if jwks.exists():
        for key in json.loads(jwks.read_text()).get("keys", []):
            if str(key.get("kid", "")).startswith(EXAMPLE_KID_PREFIX):
                raise BuildError(f"{jwks} is the example: put your identity provider's keys there")
    config = overlay / "envoy.yaml"
    if not config.exists():
        return
    for issuer in _issuers(yaml.safe_load(config.read_text())):
        host = urlsplit(issuer).hostname or issuer
        if host.endswith(".invalid"):
            raise BuildError(
                f"{config} verifies tokens of the placeholder issuer {issuer!r}: set your "
                f"identity provider's in {overlay / 'envoy.args'} and run `make k8s-envoy`"
            )


def _load(overlay: Path) -> dict[str, Any]:
    path = overlay / "kustomization.yaml"
    if not path.is_file():
        raise BuildError(f"no overlay {overlay}")
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _check_inputs(overlay: Path, kustomization: dict[str, Any]) -> None:
    for generator in ("configMapGenerator", "secretGenerator"):
        for entry in kustomization.get(generator, []):
            for source in [*entry.get("envs", []), *entry.get("files", [])]:
                # files: [path] or [key=path]
                path = overlay / source.rpartition("=")[2]
                if path.exists():
                    continue
                example = path.with_name(path.name + ".example")
                hint = f": see {example.name}" if example.exists() else ""
                raise BuildError(f"{path} is missing{hint}")


def _generated(kustomization: dict[str, Any], generator: str) -> set[str]:
    return {str(entry["name"]) for entry in kustomization.get(generator, [])}


def _image(image: str) -> tuple[str, str]:
    name, sep, tag = image.rpartition(":")
    if not sep or not name or not tag or "/" in tag:
        raise BuildError(f"IMAGE must be NAME:TAG, got {image}")
    return name, tag


def _issuers(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "issuer" and isinstance(value, str):
                yield value
            else:
                yield from _issuers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _issuers(item)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.k8s_build", description=__doc__)
    parser.add_argument("--overlay", required=True, help="a directory name under k8s/overlays")
    parser.add_argument("--image", required=True, help="the bread image, NAME:TAG")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--deploy", action="store_true", help="also refuse placeholders")
    args = parser.parse_args(argv)
    overlay = OVERLAYS / args.overlay
    try:
        jwks = None
        if args.overlay in DEV_KEY_OVERLAYS:
            jwks = DevIssuer().ensure_keys().jwks_path
        if args.deploy:
            check_deployable(overlay)
        write(overlay, args.out, args.image, jwks)
    except BuildError as exc:
        print(f"k8s_build: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
