"""The ECON-T study's own metric (``qrtl search --metric bench/econ_emd.py:neg_median_emd``): minus the
median energy mover's distance (cm, qat.econ.metrics.emd) between each test module's 48 trigger cells
and their reconstruction from the encoder's 16 latent values.

The decoder runs off-detector in float and is trained for the encoder it serves, so each encoder under
evaluation gets its own: latent 16 -> Dense 128 ReLU -> Dense 48 -> softmax, fitted (seeded, cross-entropy
on the energy fractions) on the encoder's latent codes of ``x_decoder`` (unlabelled modules in DATA.npz;
default ``x_train``), then scored on the test modules.  The encoder's weight widths are what changes
between evaluations; the decoder recipe does not.
"""
from __future__ import annotations

import numpy as np

EPOCHS = 30
HIDDEN = 128


def fractions(x: np.ndarray) -> np.ndarray:
    """(N, 8, 8, 1) modules -> (N, 48) energy fractions (rows sum to 1; an empty module stays 0)."""
    from qat.econ.data import from_8x8

    cells = from_8x8(np.asarray(x)[..., 0]).astype(np.float64)
    return cells / np.maximum(cells.sum(axis=1, keepdims=True), 1e-12)


def fit_decoder(z: np.ndarray, frac: np.ndarray, seed: int = 0, epochs: int = EPOCHS) -> list[np.ndarray]:
    """Weights [w1 (16, 128), b1, w2 (128, 48), b2] of the float decoder fitted on latent codes ``z``."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    dec = tf.keras.Sequential([L.Input((z.shape[1],)), L.Dense(HIDDEN, activation="relu"), L.Dense(frac.shape[1])])
    dec.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True))
    dec.fit(np.asarray(z, np.float32), np.asarray(frac, np.float32), epochs=epochs, batch_size=128, verbose=0)
    return [w for lay in dec.layers for w in lay.get_weights()]


def decode(z: np.ndarray, w: list[np.ndarray]) -> np.ndarray:
    """(N, 16) latent values -> (N, 48) reconstructed energy fractions (rows sum to 1), float64."""
    w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in w)
    o = np.maximum(np.asarray(z, np.float64).reshape(len(z), -1) @ w1 + b1, 0.0) @ w2 + b2
    e = np.exp(o - o.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def neg_median_emd(predict, data: dict[str, np.ndarray]) -> float:
    """-median EMD (cm) on x_test of a decoder fitted on the encoder's latent codes of x_decoder (or x_train)."""
    from qat.econ.metrics import emd

    xd = data.get("x_decoder", data["x_train"])
    w = fit_decoder(predict(xd), fractions(xd))
    return -float(np.nanmedian(emd(fractions(data["x_test"]), decode(predict(data["x_test"]), w))))
