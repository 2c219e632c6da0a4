"""A client's complete code for each exported file, without this package: the model card and docs/export.md
show them, and tests/release/test_clients.py runs each one against `malaria-cnn predict`.

Each is a program run as `python client.py MODEL CROP...` that prints `file,P(Parasitized)` per crop. A crop
is a cell on black, as NIH's crops and `screen`'s cuts are; the client only resizes it to the model's size,
by area averaging when shrinking (OpenCV's INTER_AREA) and bilinear when growing, as `predict` does. Every
file standardises the stain itself, in its graph.
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
model, files = sys.argv[1], sys.argv[2:]
classifier = keras.models.load_model(model)  # plain Keras, safe mode: the standardisation is made of Keras ops
x = np.stack([crop(f, classifier.inputs[0].shape[1]) for f in files])  # raw crops: the stain is standardised inside
for f, (p_uninfected, p_parasitized) in zip(files, classifier.predict(x, verbose=0)):
    print(f"{f},{p_parasitized:.6f}")
'''

CLIENTS = {"model_float32.tflite": TFLITE, "saved_model": SAVED_MODEL, "model.keras": KERAS}
