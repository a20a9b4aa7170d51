"""Train the small example QKeras model shipped with qrtl (deterministic).

A jet-tagger-shaped MLP 16-64-32-32-5 (6-bit weights and biases, 6-bit
ReLUs, 10-bit input quantizer, final softmax) on synthetic Gaussian-blob
data: 5 classes in 16 features.  Writes jet_tagger.h5 (full model) and
jet_tagger.json + jet_tagger_weights.h5 (hls4ml's example-model layout)
next to this file.  Run: .venv/bin/python examples/jet_tagger/train.py
"""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

import numpy as np
import tensorflow as tf
from qkeras import QActivation, QDense, quantized_bits

HERE = Path(__file__).parent


def make_data(n: int, seed: int = 0):
    centers = np.random.default_rng(1234).normal(0, 1.5, size=(5, 16))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=n)
    x = centers[y] + rng.normal(0, 1.0, size=(n, 16))
    return x.astype(np.float32), y


def build() -> tf.keras.Model:
    w = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
    return tf.keras.Sequential([
        tf.keras.Input((16,), name="features"),
        QActivation("quantized_bits(10,3,alpha=1)", name="input_q"),
        QDense(64, name="fc1", **w), QActivation("quantized_relu(6,2)", name="relu1"),
        QDense(32, name="fc2", **w), QActivation("quantized_relu(6,2)", name="relu2"),
        QDense(32, name="fc3", **w), QActivation("quantized_relu(6,2)", name="relu3"),
        QDense(5, name="output", **w),
        tf.keras.layers.Activation("softmax", name="softmax"),
    ], name="jet_tagger")


def main() -> None:
    tf.keras.utils.set_random_seed(0)
    x, y = make_data(20000)
    model = build()
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=256, verbose=2, validation_split=0.2)
    xt, yt = make_data(5000, seed=1)
    print("test accuracy", model.evaluate(xt, yt, verbose=0)[1])
    model.save(HERE / "jet_tagger.h5")
    (HERE / "jet_tagger.json").write_text(model.to_json())
    model.save_weights(HERE / "jet_tagger_weights.h5")
    np.save(HERE / "sample_inputs.npy", xt[:100])


if __name__ == "__main__":
    main()
