"""train.init_from in DVC: the train stages rerun when the model's bytes change, not when its file is only touched."""

import os

import pytest

from temp_repo import make, ran, sh

pytestmark = pytest.mark.e2e


def test_a_model_replaced_under_the_same_name_retrains(tmp_path):
    from malaria_cnn.core.params import CompactNetParams, ModelParams
    from malaria_cnn.training import model_io, networks
    from malaria_cnn.training.runtime import keras

    start = tmp_path / "start.keras"

    def save(seed):
        keras.utils.set_random_seed(seed)
        model_io.save(networks.build(ModelParams(compact=CompactNetParams(widths=(8, 16, 32))), image_size=32), start)

    save(0)
    repo = tmp_path / "project"
    repo.mkdir()
    make(repo, {"train": {"init_from": str(start), "finetune": {"learning_rate": 0.0001, "epochs": 1}}})
    out = sh(["dvc", "repro", "train@0"], repo)
    assert ran(out) == ["ingest", "preprocess", "split", "train@0"]
    assert f"train@0: fine-tuned from {start} (sha256 " in out
    assert ran(sh(["dvc", "repro", "train@0"], repo)) == []
    os.utime(start, ns=(1, 1))  # touched, the same bytes
    assert ran(sh(["dvc", "repro", "train@0"], repo)) == []
    save(1)  # another model under the same name
    assert ran(sh(["dvc", "repro", "train@0"], repo)) == ["train@0"]
