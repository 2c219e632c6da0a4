"""TensorFlow set-up in one place: a quiet import, seeding and deterministic ops.

Modules that need TensorFlow import it from here (`from malaria_cnn.training.runtime import tf, keras`)
so that its start-up chatter is filtered the same way everywhere.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Lines TensorFlow writes to the process's stderr at start-up on a machine without a GPU,
# before its own log level applies, and the converter's progress lines. Anything else passes.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|cudart_stub|"
    r"Could not find cuda drivers|failed call to cuInit|cuda_platform|Unable to register cu|"
    r"computation placer already registered|TF-TRT Warning|This TensorFlow binary is optimized|"
    # errors in name only, at a fit's start and at model.predict (TensorFlow 2.21 on CPUs)
    r"oneDNN supports DT_UINT8 only on platforms with AVX-512|NodeDef mentions attribute use_unbounded_threadpool|"
    # TFLite's converter and interpreter
    r"fully_quantize: \d|Created TensorFlow Lite XNNPACK delegate|tf.lite.Interpreter is deprecated"
)


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Pass what is written to the process's stderr (by native code too) through a filter that drops the
    known noise, line by line as it comes: a long fit's messages are not held back."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with open(read_end, "rb") as pipe, open(saved, "wb", buffering=0, closefd=False) as out:
            for line in pipe:
                if not _NOISE.search(line.decode("utf-8", "replace")):
                    out.write(line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump passes what is left, then stops
        thread.join(timeout=10)  # a child process still holding the pipe keeps it open: do not wait for it
        if not thread.is_alive():
            os.close(saved)


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
