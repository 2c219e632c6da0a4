"""A folder source: editing a crop reruns ingest; an unchanged folder leaves it alone."""

import numpy as np
import pytest

from malaria_cnn.data.images import encode_png

from temp_repo import make, ran, sh

pytestmark = pytest.mark.e2e


def test_an_edited_crop_reruns_ingest(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    crops = tmp_path / "crops"
    rng = np.random.default_rng(0)
    for label in ("Parasitized", "Uninfected"):
        (crops / label).mkdir(parents=True)
        for i in range(3):
            (crops / label / f"C{i}P1_IMG_{label}_{i}.png").write_bytes(encode_png(rng.integers(0, 255, (20, 20, 3),
                                                                                               dtype=np.uint8)))
    make(repo, {"data": {"source": "folder", "path": str(crops)}})
    assert ran(sh(["dvc", "repro", "ingest"], repo)) == ["ingest"]
    assert ran(sh(["dvc", "repro", "ingest"], repo)) == []  # listing ran, found nothing new
    edited = crops / "Uninfected" / "C0P1_IMG_Uninfected_0.png"
    edited.write_bytes(encode_png(np.zeros((20, 20, 3), np.uint8)))
    assert ran(sh(["dvc", "repro", "ingest"], repo)) == ["ingest"]
