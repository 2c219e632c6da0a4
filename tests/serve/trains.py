"""Does a zip of crops train? The project copied into a temporary git repository (tiny params), then
`dvc exp run` on the zip, checked from the zip's file names to the evaluate stage's metrics."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from malaria_cnn.core import paths
from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.data import manifest

from e2e.temp_repo import make, sh

NIH_ROOT = "cell_images"


def crops_of(zip_path: Path) -> dict[str, tuple[str, str]]:
    """{member: (label, slide)} of the zip's crops, both read off the name: cell_images/<label>/<slide>_IMG_..."""
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if n.startswith(f"{NIH_ROOT}/") and n.endswith(".png")]
    out = {}
    for name in names:
        _, label, file = name.split("/")
        assert label in CLASS_NAMES and "_IMG_" in file, name
        out[name] = (label, file.split("_IMG_")[0])
    return out


def assert_trains(zip_path: Path, tmp_path: Path, params: dict | None = None, timeout: int = 900) -> dict:
    """Train the pipeline (tiny params, updated by `params`) on the zip; assert every crop went in with its
    label and slide and that evaluate wrote its metrics; return them. The zip needs 3 slides or more
    (with cv.folds 2, enough that each fold holds both classes)."""
    expected = crops_of(Path(zip_path))
    assert expected, f"{zip_path} holds no crops"
    repo = tmp_path / "trains"
    repo.mkdir()
    make(repo, params)
    sh(["dvc", "exp", "run", "-S", "data.source=zip", "-S", f"data.path={Path(zip_path).resolve()}"], repo,
       timeout=timeout)
    rows = manifest.read(repo / paths.MANIFEST)
    assert {r.file: (r.label, r.slide) for r in rows} == expected
    sizes = json.loads((repo / paths.SPLIT_SIZES).read_text())
    split_cells = sum(sizes[s][c] for s in ("train", "val", "test") for c in CLASS_NAMES)
    assert split_cells == len(expected), "crops lost between ingest and split (data/processed/rejects.csv)"
    assert sum(sizes[s]["slides"] for s in ("train", "val", "test")) == len({s for _, s in expected.values()})
    metrics = json.loads((repo / paths.METRICS).read_text())
    assert metrics["cells"] == sizes["test"]["Parasitized"] + sizes["test"]["Uninfected"] > 0
    return metrics
