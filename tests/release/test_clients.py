"""Each exported file's client code (release/clients.py, shown in the model card and docs/export.md) runs in a
process that cannot import malaria_cnn, on raw crops, and gives `malaria-cnn predict`'s probabilities."""

import csv
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import run_cli
from malaria_cnn.data import images
from malaria_cnn.release import clients, export
from malaria_cnn.training import model_io

NO_PACKAGE = "import sys; sys.modules['malaria_cnn'] = None  # a client without this package\n"
TOLERANCE = {"model_float32.tflite": 1e-5, "saved_model": 1e-5, "model.keras": 1e-5, "model_int8.tflite": 0.1}


@pytest.fixture(scope="module")
def files(model_dir, tmp_path_factory, small_cells):
    """The model and its exported copies, as the export stage writes them."""
    where = tmp_path_factory.mktemp("exported")
    model = model_io.load(model_dir / "model.keras")
    export.saved_model(model, where / "saved_model")
    raw = np.stack([images.read_cell(c.read(), model_io.image_size(model), stain_mode="none")[0]
                    for c in small_cells[:20]])
    (where / "model_float32.tflite").write_bytes(export.tflite(where / "saved_model"))
    (where / "model_int8.tflite").write_bytes(export.tflite(where / "saved_model", raw))
    return where


@pytest.fixture(scope="module")
def synthetic(small_cells, tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    for cell in small_cells[::3]:
        (folder / cell.member.replace("/", "_")).write_bytes(cell.read())
    return folder


@pytest.fixture
def dev(nih_dev_zip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dev")
    with zipfile.ZipFile(nih_dev_zip) as zf:
        for name in [n for n in zf.namelist() if n.endswith(".png")][::170]:
            (folder / name.rsplit("/", 1)[1]).write_bytes(zf.read(name))
    return folder


def predicted(model_dir, folder, tmp_path) -> dict[str, float]:
    out = tmp_path / "predict.csv"
    done = run_cli("predict", "--model", model_dir / "model.keras", folder, "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as fh:
        return {r["file"].rsplit("/", 1)[-1]: float(r["p_parasitized"]) for r in csv.DictReader(fh)}


def client(code: str, model, folder, tmp_path) -> dict[str, float]:
    script = tmp_path / "client.py"
    script.write_text(NO_PACKAGE + code, encoding="utf-8")
    crops = sorted(str(p) for p in folder.iterdir())
    done = subprocess.run([sys.executable, str(script), str(model), *crops], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.rsplit(",", 1) for line in done.stdout.splitlines()]
    return {f.rsplit("/", 1)[-1]: float(p) for f, p in lines}


def check(model_dir, files, folder, tmp_path):
    expected = predicted(model_dir, folder, tmp_path)
    runs = {"model.keras": (clients.KERAS, model_dir / "model.keras"),
            "saved_model": (clients.SAVED_MODEL, files / "saved_model"),
            "model_float32.tflite": (clients.TFLITE, files / "model_float32.tflite"),
            "model_int8.tflite": (clients.TFLITE, files / "model_int8.tflite")}
    for name, (code, model) in runs.items():
        got = client(code, model, folder, tmp_path)
        assert got.keys() == expected.keys(), name
        worst = max(abs(got[f] - expected[f]) for f in expected)
        assert worst <= TOLERANCE[name], f"{name}: largest difference {worst}"


def test_clients_of_synthetic_crops_agree_with_predict(model_dir, files, synthetic, tmp_path):
    check(model_dir, files, synthetic, tmp_path)


def test_clients_of_dev_crops_agree_with_predict(model_dir, files, dev, tmp_path):
    check(model_dir, files, dev, tmp_path)


def test_a_client_cannot_import_the_package(tmp_path):
    script = tmp_path / "client.py"
    script.write_text(NO_PACKAGE + "import malaria_cnn\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ModuleNotFoundError: import of malaria_cnn halted" in done.stderr


def test_the_model_card_and_the_manual_show_each_client():
    from conftest import ROOT

    manual = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    for name, code in clients.CLIENTS.items():
        assert code in manual, f"docs/export.md does not show the {name} client as release/clients.py has it"
