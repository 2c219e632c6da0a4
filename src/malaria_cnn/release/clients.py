"""A client's complete code for each exported file, without this package: the model card and docs/export.md
show them, and tests/release/test_clients.py runs each one against `malaria-cnn predict`.

Each is a program run as `python client.py MODEL CROP...` that prints `file,P(Parasitized)` per crop. A crop
is a cell on black, as NIH's crops and `screen`'s cuts are; the client only resizes it to the model's size,
by area averaging when shrinking (OpenCV's INTER_AREA) and bilinear when growing, as `predict` does. The
SavedModel and TFLite files standardise the stain themselves; `model.keras` takes standardised crops, so its
client carries the standardisation (data/stain.py's, in a dozen lines of numpy and OpenCV).
"""

from __future__ import annotations

_CROP = '''

def crop(path, size):
    """A cell crop as the model takes it: RGB uint8, size x size (area averaging when shrinking)."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    shrinking = bgr.shape[0] * bgr.shape[1] > size * size
    bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

'''

TFLITE = '''# python client.py model_float32.tflite cell.png ...   (pip install ai-edge-litert opencv-python-headless)
import sys

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
''' + _CROP + '''
model, files = sys.argv[1], sys.argv[2:]  # model_float32.tflite or model_int8.tflite: the same input and output
interpreter = Interpreter(model_path=model)
given, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
x = np.stack([crop(f, given["shape"][1]) for f in files])  # raw crops: the stain is standardised inside
interpreter.resize_tensor_input(given["index"], x.shape)
interpreter.allocate_tensors()
interpreter.set_tensor(given["index"], x)
interpreter.invoke()
for f, (p_uninfected, p_parasitized) in zip(files, interpreter.get_tensor(output["index"])):
    print(f"{f},{p_parasitized:.6f}")
'''

SAVED_MODEL = '''# python client.py saved_model/ cell.png ...   (pip install tensorflow opencv-python-headless)
import sys

import cv2
import numpy as np
import tensorflow as tf
''' + _CROP + '''
model, files = sys.argv[1], sys.argv[2:]
serve = tf.saved_model.load(model).signatures["serving_default"]
size = serve.structured_input_signature[1]["rgb_uint8"].shape[1]
x = np.stack([crop(f, size) for f in files])  # raw crops: the stain is standardised inside
for f, (p_uninfected, p_parasitized) in zip(files, serve(rgb_uint8=tf.constant(x))["probabilities"].numpy()):
    print(f"{f},{p_parasitized:.6f}")
'''

KERAS = '''# python client.py model.keras cell.png ...   (pip install keras tensorflow opencv-python-headless)
import sys

import cv2
import keras
import numpy as np
''' + _CROP + '''
REFERENCE_RGB = np.array([189.0, 155.0, 159.0])  # every cell's stain is moved to this median colour
BLACK, MAX_SCALE = 10, 8.0  # background: darker in every channel; optical density scaled by at most 8x


def standardised(rgb):
    """The crop with its cell's optical density, per channel, scaled so that its median pixel is REFERENCE_RGB;
    the background and the cell's outermost pixels take REFERENCE_RGB."""
    inside = (rgb.max(axis=2) >= BLACK).astype(np.uint8)
    core = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0
    core = core if core.any() else inside > 0
    if not core.any():
        return rgb
    od = -np.log(np.clip(np.median(rgb[core], axis=0), 1, 254) / 255)
    scale = np.clip(-np.log(REFERENCE_RGB / 255) / np.maximum(od, 1e-6), 1 / MAX_SCALE, MAX_SCALE)
    table = np.maximum(np.rint(255 * (np.arange(256)[:, None] / 255) ** scale), 1).astype(np.uint8)
    table[0] = 0
    out = np.stack([table[rgb[..., c], c] for c in range(3)], axis=-1)
    out[~core] = REFERENCE_RGB.astype(np.uint8)
    return out


model, files = sys.argv[1], sys.argv[2:]
network = keras.models.load_model(model)
x = np.stack([standardised(crop(f, network.inputs[0].shape[1])) for f in files])
for f, (p_uninfected, p_parasitized) in zip(files, network.predict(x, verbose=0)):
    print(f"{f},{p_parasitized:.6f}")
'''

CLIENTS = {"model_float32.tflite": TFLITE, "saved_model": SAVED_MODEL, "model.keras": KERAS}
