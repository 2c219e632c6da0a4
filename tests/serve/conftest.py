"""What the in-process serve tests share: the tiny model with its slide rule, loaded once per module."""

from __future__ import annotations

import argparse

import pytest

from malaria_cnn.release.options import scorer


@pytest.fixture(scope="module")
def scoring(ruled_model_dir):
    return scorer(argparse.Namespace(model=str(ruled_model_dir / "model.keras"), threshold=None, threshold_file=None,
                                     batch_size=64))
