"""Fixtures the fast tests share."""

import pytest

from tests.unit.fakes import FakePay


@pytest.fixture
def pay() -> FakePay:
    """Pay as order sees it: approves every charge unless a test tells it otherwise."""
    return FakePay()
