"""The postgres StatefulSet's init script (k8s/base/postgres/databases.sh), run the way the
image's entrypoint runs it on a first boot: executed from the mounted ConfigMap, as
POSTGRES_USER, with the container's rendered environment. The local test server stands in for
the pod, and the roles and databases get names unique to the run (dropped again)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pathlib
import stat
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import closing

import psycopg2
import pytest

from tests.k8s.manifests import Manifests, Obj, containers, pod_spec

INITDB = "/docker-entrypoint-initdb.d"
# The local test server (tests/k8s/test_probes.py uses the same one) and its superuser.
LOCAL_ENV = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "POSTGRES_USER": "postgres"}


def connect() -> psycopg2.extensions.connection:
    return psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")


def init_scripts(manifests: Manifests, statefulset: Obj, tmp: pathlib.Path) -> list[pathlib.Path]:
    """The files the entrypoint finds in its init directory, with the volume's file mode."""
    (container,) = containers(statefulset)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == INITDB]
    (volume,) = [v for v in pod_spec(statefulset)["volumes"] if v["name"] == mount["name"]]
    source = volume["configMap"]
    paths = []
    for key, text in sorted(manifests.configmap_data(source["name"]).items()):
        path = tmp / key
        path.write_text(text)
        path.chmod(source.get("defaultMode", 0o644))
        paths.append(path)
    return paths


@pytest.fixture
def names(dev: Manifests) -> Iterator[dict[str, str]]:
    """The manifest's service databases, each with a name unique to this run."""
    (container,) = containers(dev.get("StatefulSet", "postgres"))
    env = dev.container_env(dev.get("StatefulSet", "postgres"), container)
    run_id = uuid.uuid4().hex[:10]
    unique = {name: f"bread_k8s_{run_id}_{name}" for name in env["SERVICE_DATABASES"].split()}
    yield unique
    conn = connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in unique.values():
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'DROP ROLE IF EXISTS "{name}"')
    conn.close()


def test_init_script_gives_each_service_a_role_and_a_database(
    dev: Manifests, names: dict[str, str], tmp_path: pathlib.Path
) -> None:
    statefulset = dev.get("StatefulSet", "postgres")
    (container,) = containers(statefulset)
    env = dev.container_env(statefulset, container)
    assert names, "SERVICE_DATABASES lists the services"
    run_env = {
        "PATH": os.environ["PATH"],
        **LOCAL_ENV,
        "SERVICE_DATABASES": " ".join(names.values()),
    }
    for name, unique in names.items():
        run_env[f"{unique.upper()}_PASSWORD"] = env[f"{name.upper()}_PASSWORD"]

    (script,) = init_scripts(dev, statefulset, tmp_path)
    assert script.suffix == ".sh"
    # Not executable, the entrypoint would source it into its own shell instead.
    assert script.stat().st_mode & stat.S_IXOTH
    # Again on the same server: what an operator does for a volume made before.
    for _ in range(2):
        result = subprocess.run(
            [str(script)], env=run_env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr

    with closing(connect()) as conn, conn.cursor() as cur:
        for name, unique in names.items():
            cur.execute(
                "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", (unique,)
            )
            can_login, verifier = cur.fetchone()
            assert can_login, unique
            assert scram_matches(verifier, env[f"{name.upper()}_PASSWORD"]), unique
            cur.execute(
                "SELECT pg_get_userbyid(datdba), datacl::text[] FROM pg_database"
                " WHERE datname = %s",
                (unique,),
            )
            owner, acl = cur.fetchone()
            assert owner == unique
            # No grant to PUBLIC ("=..."): only the owner connects.
            assert [entry for entry in acl if entry.startswith("=")] == [], acl


def test_init_script_fails_without_a_password(
    dev: Manifests, names: dict[str, str], tmp_path: pathlib.Path
) -> None:
    """A Secret without the key must stop the first boot, not create a role without one."""
    (script,) = init_scripts(dev, dev.get("StatefulSet", "postgres"), tmp_path)
    name = next(iter(names.values()))
    result = subprocess.run(
        [str(script)],
        env={
            "PATH": os.environ["PATH"],
            **LOCAL_ENV,
            "SERVICE_DATABASES": name,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"{name.upper()}_PASSWORD is not set" in result.stderr
    with closing(connect()) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        assert cur.fetchone() is None


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier (RFC 5803, as pg_authid keeps it) is for password."""
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256", "password_encryption = scram-sha-256 (the default)"
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _ = keys.split(":")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))
