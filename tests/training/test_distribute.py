import json

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import CompactNetParams, ModelParams, Params, TrainParams
from malaria_cnn.training import distribute
from malaria_cnn.training import train as training
from malaria_cnn.training.runtime import keras
from malaria_cnn.training.train import train

CLUSTER = {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}


def test_tf_config_gives_this_process_task():
    def task(kind, index, cluster=CLUSTER):
        return distribute.cluster_task(json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}}))

    assert task("worker", 0) == ("worker 0", True) and task("worker", 1) == ("worker 1", False)
    with_chief = {"chief": ["a:1"], **CLUSTER}
    assert task("chief", 0, with_chief) == ("chief 0", True) and task("worker", 0, with_chief) == ("worker 0", False)


@pytest.mark.parametrize("tf_config, start", [
    ("", "train.distribute is multi_worker but TF_CONFIG is not set: set TF_CONFIG to"),
    ("{not json", "TF_CONFIG is not a cluster with this process's task in it: set TF_CONFIG to"),
    (json.dumps({"cluster": CLUSTER}), "TF_CONFIG is not a cluster with this process's task in it"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 2}}), "TF_CONFIG's task must be a chief or worker"),
    (json.dumps({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}), "TF_CONFIG's task must be a chief or worker"),
])
def test_a_bad_tf_config_is_one_line_saying_what_to_set(tf_config, start):
    with pytest.raises(UserError) as err:
        distribute.cluster_task(tf_config)
    message = str(err.value)
    assert message.startswith(start) and "\n" not in message and '"task": {"type": "worker", "index": 0}' in message


def test_mixed_precision_is_float16_on_a_gpu_bfloat16_on_a_cpu_and_auto_only_on_a_gpu():
    assert distribute.policy(False, gpu=True) == distribute.policy("auto", gpu=False) == "float32"
    assert distribute.policy(True, gpu=True) == distribute.policy("auto", gpu=True) == "mixed_float16"
    assert distribute.policy(True, gpu=False) == "mixed_bfloat16"


@pytest.mark.parametrize("value", ["two", "0", "-1"])
def test_a_bad_cpu_device_count_is_one_line(value):
    with pytest.raises(UserError, match=f"^MALARIA_CNN_CPU_DEVICES must be an integer >= 1, got '{value}'$"):
        distribute.split_cpu(value)


def test_by_default_one_device_in_float32():
    run = distribute.start(TrainParams())
    assert (run.kind, run.strategy, run.replicas, run.chief, run.task, run.precision) == ("none", None, 1, True, "", "float32")


@pytest.fixture
def float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_a_float32_head_and_resumable_state(precision, tmp_path, float32_afterwards,
                                                                        monkeypatch):
    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0)  # a checkpoint every epoch, mixed precision's state too
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 16, 16, 3), dtype=np.uint8)
    y = (np.arange(48) % 2).astype(np.uint8)
    p = Params(epochs=2, model=ModelParams(compact=CompactNetParams(widths=(4, 8))),
               train=TrainParams(batch_size=16, reduce_lr=1, early_stopping=0, mixed_precision=True))
    keras.mixed_precision.set_global_policy(precision)  # what start() picks on a GPU (float16) or a CPU
    run = distribute.Run("none", None, 1, True, "", precision)
    model, history = train(p, (x[:32], y[:32]), (x[32:], y[32:]), checkpoints=tmp_path / "ckpt", run=run)
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))
    assert model.layers[1].compute_dtype == precision.removeprefix("mixed_")
    assert model.get_layer("probabilities").compute_dtype == "float32"
    assert model.predict(x[:4], verbose=0).dtype == np.float32
    assert (type(model.optimizer).__name__ == "LossScaleOptimizer") == (precision == "mixed_float16")
