from __future__ import annotations

import pytest

from tests.k8s.manifests import OVERLAYS, Manifests


@pytest.fixture(scope="session", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> Manifests:
    """Each overlay, rendered once per session."""
    return Manifests(request.param)


@pytest.fixture(scope="session")
def dev() -> Manifests:
    return Manifests("dev")


@pytest.fixture(scope="session")
def prod() -> Manifests:
    return Manifests("prod")
