"""Where training runs: the tf.distribute strategy params ask for, and the mixed-precision policy.

`start()` must run before TensorFlow does any work: splitting the CPU into logical devices and
joining a multi-worker cluster are only possible then. `train.batch_size` is the global batch:
each of N replicas computes batch_size / N of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import TrainParams
from malaria_cnn.training.runtime import keras, tf

CPU_DEVICES_ENV = "MALARIA_CNN_CPU_DEVICES"  # split the CPU into this many logical devices (to try mirrored)
TF_CONFIG_EXAMPLE = ('\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}\'')


@dataclass(frozen=True)
class Run:
    """How this process trains: `strategy` None is TensorFlow's default (one device, as without tf.distribute)."""

    kind: str  # none, mirrored or multi_worker (what auto resolved to)
    strategy: Any
    replicas: int
    chief: bool  # writes the model and the metrics: every process but multi_worker's other workers
    task: str  # this process in TF_CONFIG's cluster ("worker 1"); empty outside multi_worker
    precision: str  # Keras's dtype policy: float32, mixed_float16 or mixed_bfloat16

    def scope(self):
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()


def start(cfg: TrainParams) -> Run:
    """Split the CPU if asked to, build the strategy for `train.distribute` and set the dtype policy."""
    split_cpu(os.environ.get(CPU_DEVICES_ENV, ""))
    gpus = tf.config.list_physical_devices("GPU")
    kind = cfg.distribute
    if kind == "auto":
        kind = "mirrored" if len(gpus) > 1 else "none"
    strategy, chief, task = None, True, ""
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = MirroredStrategy([d.name for d in devices])
    elif kind == "multi_worker":
        task, chief = cluster_task(os.environ.get("TF_CONFIG", ""))
        strategy = MultiWorkerMirroredStrategy()
    precision = policy(cfg.mixed_precision, gpu=bool(gpus))
    keras.mixed_precision.set_global_policy(precision)
    run = Run(kind, strategy, strategy.num_replicas_in_sync if strategy else 1, chief, task, precision)
    if strategy or precision != "float32":
        print(f"train: {describe(run, cfg.batch_size)}", file=sys.stderr)
    return run


def describe(run: Run, batch_size: int) -> str:
    where = {"none": "one device", "mirrored": f"mirrored over {run.replicas} device{'s' * (run.replicas > 1)}",
             "multi_worker": f"{run.replicas} replicas on several workers, this is {run.task}"}[run.kind]
    per_replica = f", global batch {batch_size} = {batch_size / run.replicas:g} per replica" if run.strategy else ""
    return f"{where}{per_replica}, {run.precision}"


def split_cpu(value: str) -> None:
    """Make the CPU look like `value` devices (a way to try `mirrored` without GPUs); empty: leave it alone."""
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{CPU_DEVICES_ENV} must be an integer >= 1, got {value!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(value))
    except RuntimeError:
        raise UserError(f"{CPU_DEVICES_ENV} must be set before TensorFlow starts: in the stage's environment") from None


def cluster_task(tf_config: str) -> tuple[str, bool]:
    """This process's task in TF_CONFIG ("worker 1") and whether it is the chief (the chief task, or
    worker 0 of a cluster without one); one line naming what to set if TF_CONFIG is missing or wrong."""
    hint = f"set TF_CONFIG to the cluster and this process's task, e.g. TF_CONFIG={TF_CONFIG_EXAMPLE}"
    if not tf_config:
        raise UserError(f"train.distribute is multi_worker but TF_CONFIG is not set: {hint}")
    try:
        config = json.loads(tf_config)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], task["index"]
        hosts = cluster[kind]
    except (ValueError, TypeError, KeyError):
        raise UserError(f"TF_CONFIG is not a cluster with this process's task in it: {hint}") from None
    if kind not in ("chief", "worker") or not isinstance(index, int) or not 0 <= index < len(hosts):
        raise UserError(f"TF_CONFIG's task must be a chief or worker listed in its cluster, got {task}: {hint}")
    return f"{kind} {index}", kind == "chief" or (index == 0 and "chief" not in cluster)


def policy(mixed_precision: str | bool, gpu: bool) -> str:
    """Keras's dtype policy: float16 compute on GPUs, bfloat16 on CPUs; `auto` mixes only on a GPU."""
    if mixed_precision is False or (mixed_precision == "auto" and not gpu):
        return "float32"
    return "mixed_float16" if gpu else "mixed_bfloat16"


def scratch_unless_chief(run: Run) -> contextlib.AbstractContextManager[str | None]:
    """None for the chief; for another worker a temporary folder for its copy of the outputs, removed
    afterwards (every worker saves, as Keras's multi-worker guide does, but only the chief's count)."""
    return contextlib.nullcontext() if run.chief else tempfile.TemporaryDirectory(prefix="malaria-cnn-worker-")


class _KerasReductions:
    """The reductions Keras 3's fit() asks of a strategy and tf.distribute refuses (the scalar case
    is reported as tensorflow/tensorflow#72388):

    - the first batch of the train and val sets, reduced only to learn its shapes: a collective
      carries no uint8 images and no unequal parts of a batch (the last, or a small val set's
      only one), so the first replica's part stands in for the batch;
    - under multi_worker, each step's scalar metrics, reduced along an axis they do not have.
    """

    def reduce(self, reduce_op, value, axis=None):
        if isinstance(value, tuple):  # (images, labels[, sample weights]): a batch
            return tuple(None if v is None else self.experimental_local_results(v)[0] for v in value)
        rank = self.experimental_local_results(value)[0].shape.rank
        return super().reduce(reduce_op, value, axis if rank else None)


class MirroredStrategy(_KerasReductions, tf.distribute.MirroredStrategy):
    """tf.distribute.MirroredStrategy, as Keras's fit() needs it."""


class MultiWorkerMirroredStrategy(_KerasReductions, tf.distribute.MultiWorkerMirroredStrategy):
    """tf.distribute.MultiWorkerMirroredStrategy, as Keras's fit() needs it."""
