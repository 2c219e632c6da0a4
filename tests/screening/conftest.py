"""Synthetic smear photos shared by the screening tests (made once per session)."""

from __future__ import annotations

import pytest

from malaria_cnn.screening.synthetic_field import make_field


@pytest.fixture(scope="session")
def fields():
    """Three synthetic fields: 36 cells each, about 40% placed against a neighbour, one white cell."""
    return {f"field_{seed}.png": make_field(seed) for seed in range(3)}
