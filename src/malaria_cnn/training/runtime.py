"""TensorFlow set-up in one place: a quiet import, seeding and deterministic ops.

Modules that need TensorFlow import it from here (`from malaria_cnn.training.runtime import tf, keras`)
so that its start-up chatter is filtered the same way everywhere.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Lines TensorFlow writes to the process's stderr at start-up on a machine without a GPU,
# before its own log level applies, and the converter's progress lines. Anything else passes.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|cudart_stub|"
    r"Could not find cuda drivers|failed call to cuInit|cuda_platform|Unable to register cu|"
    r"computation placer already registered|TF-TRT Warning|This TensorFlow binary is optimized|"
    # TFLite's converter and interpreter
    r"fully_quantize: \d|Created TensorFlow Lite XNNPACK delegate|tf.lite.Interpreter is deprecated"
)


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Capture what native code writes to the process's stderr; replay all but the known noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not _NOISE.search(line):
                    sys.stderr.write(line)


def _import_quietly():
    """Import TensorFlow and list its devices with native stderr filtered."""
    with native_stderr_filtered():
        import tensorflow as tf_module

        tf_module.config.list_physical_devices()
    return tf_module


tf = _import_quietly()
import keras  # noqa: E402  (after TensorFlow, which it runs on)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
