"""Fixtures of the template's own test suite (pytest + pytest-copier)."""

from __future__ import annotations

import pytest
from helpers import TEMPLATE_PATHS


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    """pytest-copier copies only these into its session template repo (tagged 99.99.99)."""
    return list(TEMPLATE_PATHS)
