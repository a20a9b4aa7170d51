"""The benchmark models, their synthetic data, and deterministic training.

(a) ``jet_tagger``: jet-tagger-shaped MLP 16-64-32-32-5; 16-bit input quantizer
    quantized_bits(16,6), 6-bit weights and biases quantized_bits(6,0),
    quantized_relu(6,2) activations, final softmax.  Data: 5 Gaussian blobs in
    16 features (as examples/jet_tagger).
(b) ``econt_encoder``: ECON-T style encoder (published QKeras variant): input
    8x8x1 through quantized_bits(10,3), QConv2D 8 filters 3x3 stride 2 'same'
    (6-bit weights and biases), quantized_relu(11,3), Flatten, QDense 16
    (6-bit), quantized_relu(9,1) latent.  Trained as an autoencoder with a small
    float decoder (Dense 128 -> 8x8) on synthetic HGCAL-like showers; only the
    encoder is saved (the decoder runs off-detector).
(c) ``random_mlp``: the jet tagger's shape and quantizers (16-64-32-32-5, 16-bit inputs, 6-bit
    weights and biases, quantized_relu(6,2)) with seeded uniformly random weights on the 6-bit grid:
    dense matrices with every digit pattern, not the sparse ones training leaves (no softmax).
(d) ``conv8``: one convolution with 8-bit weights: input 8x8x1 through quantized_bits(8,0),
    QConv2D 8 filters 3x3 stride 1 'valid' (weights and biases quantized_bits(8,0), seeded random on
    the grid), quantized_relu(8,3): 36 positions x (9 -> 8) products per inference.

Everything is seeded; TF_DETERMINISTIC_OPS makes CPU training repeatable.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

from pathlib import Path

import numpy as np

MODEL_NAMES = ("jet_tagger", "econt_encoder", "random_mlp", "conv8")


# ---- data -------------------------------------------------------------------------------------

def jet_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    centers = np.random.default_rng(1234).normal(0, 1.5, size=(5, 16))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=n)
    x = centers[y] + rng.normal(0, 1.0, size=(n, 16))
    return x.astype(np.float32), y


# 48 trigger cells of an HGCAL module laid out in an 8x8 grid: the three 4x4 quadrants that
# a hexagonal module maps to (the fourth quadrant is padding, always zero), as in ECON-T.
ECON_MASK = np.zeros((8, 8), dtype=bool)
ECON_MASK[:4, :4] = ECON_MASK[:4, 4:] = ECON_MASK[4:, :4] = True


def econ_data(n: int, seed: int) -> np.ndarray:
    """Synthetic showers: 1-3 clustered deposits (exponential transverse profile) plus pile-up
    noise on the 48 cells; normalised by the power of two above the module sum (a bit shift, as
    the ASIC does) and rounded to 8 bits (multiples of 1/256, range [0, 1))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:8, 0:8]
    out = np.zeros((n, 8, 8), dtype=np.float64)
    cells = np.argwhere(ECON_MASK)
    for k in range(n):
        img = rng.exponential(0.6, size=(8, 8)) * (rng.random((8, 8)) < 0.3)  # pile-up / noise
        for _ in range(rng.integers(1, 4)):
            cy, cx = cells[rng.integers(len(cells))]
            e = rng.lognormal(3.0, 0.8)
            r = rng.uniform(0.6, 1.6)
            img += e * np.exp(-np.hypot(yy - cy - rng.normal(0, .3), xx - cx - rng.normal(0, .3)) / r)
        img = np.where(ECON_MASK, img, 0.0)
        total = img.sum()
        norm = 2.0 ** np.ceil(np.log2(max(total, 1e-9)))
        out[k] = np.floor(img / norm * 256.0) / 256.0
    return out[..., None].astype(np.float32)


# ---- models -----------------------------------------------------------------------------------

def _jet_mlp(name: str, softmax: bool):
    """16-64-32-32-5: quantized_bits(16,6) input, 6-bit weights/biases, quantized_relu(6,2)."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    w = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
    return tf.keras.Sequential([
        tf.keras.Input((16,), name="features"),
        QActivation(quantized_bits(16, 6, alpha=1), name="input_q"),
        QDense(64, name="fc1", **w), QActivation(quantized_relu(6, 2), name="relu1"),
        QDense(32, name="fc2", **w), QActivation(quantized_relu(6, 2), name="relu2"),
        QDense(32, name="fc3", **w), QActivation(quantized_relu(6, 2), name="relu3"),
        QDense(5, name="output", **w),
    ] + ([tf.keras.layers.Activation("softmax", name="softmax")] if softmax else []), name=name)


def build_jet_tagger():
    return _jet_mlp("jet_tagger", softmax=True)


def build_econt_encoder():
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    L = tf.keras.layers
    w = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
    inp = L.Input((8, 8, 1), name="wafer")
    x = QActivation(quantized_bits(10, 3, alpha=1), name="input_qa")(inp)
    x = QConv2D(8, (3, 3), strides=(2, 2), padding="same", name="conv2d", **w)(x)
    x = QActivation(quantized_relu(11, 3), name="conv2d_act")(x)
    x = L.Flatten(name="flatten")(x)
    x = QDense(16, name="encoded", **w)(x)
    x = QActivation(quantized_relu(9, 1), name="encoded_act")(x)
    return tf.keras.Model(inp, x, name="econt_encoder")


def train_jet_tagger(out: Path) -> dict:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    x, y = jet_data(20000, seed=0)
    model = build_jet_tagger()
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=6, batch_size=256, verbose=0)
    xt, yt = jet_data(5000, seed=1)
    acc = float(model.evaluate(xt, yt, verbose=0)[1])
    model.save(out)
    return {"test_accuracy": round(acc, 4), "train_samples": len(x), "epochs": 6}


def train_econt_encoder(out: Path) -> dict:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    x = econ_data(12000, seed=0)
    enc = build_econt_encoder()
    L = tf.keras.layers
    dec = tf.keras.Sequential([L.Input((16,)), L.Dense(128, activation="relu"), L.Dense(64, activation="relu"),
                               L.Reshape((8, 8, 1))], name="decoder")
    ae = tf.keras.Model(enc.input, dec(enc.output), name="autoencoder")
    ae.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss="mse")
    ae.fit(x, x, epochs=6, batch_size=256, verbose=0)
    xt = econ_data(2000, seed=1)
    mse = float(ae.evaluate(xt, xt, verbose=0))
    enc.save(out)
    return {"reconstruction_mse": round(mse, 6), "train_samples": len(x), "epochs": 6}


def build_random_mlp():
    return _jet_mlp("random_mlp", softmax=False)


def build_conv8():
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, quantized_bits, quantized_relu

    w = dict(kernel_quantizer=quantized_bits(8, 0, alpha=1), bias_quantizer=quantized_bits(8, 0, alpha=1))
    return tf.keras.Sequential([
        tf.keras.Input((8, 8, 1), name="image"),
        QActivation(quantized_bits(8, 0, alpha=1), name="input_q"),
        QConv2D(8, (3, 3), padding="valid", name="conv", **w),
        QActivation(quantized_relu(8, 3), name="conv_act"),
    ], name="conv8")


def _random_on_grid(model, bits: int, seed: int) -> None:
    """Every kernel and bias uniformly random on the quantized_bits(bits, 0) grid: k / 2**(bits-1),
    k in [-2**(bits-1), 2**(bits-1) - 1] (the quantizers leave them unchanged)."""
    rng = np.random.default_rng(seed)
    half = 1 << (bits - 1)
    model.set_weights([rng.integers(-half, half, size=w.shape).astype(np.float32) / half
                       for w in model.get_weights()])


def save_random_mlp(out: Path) -> dict:
    model = build_random_mlp()
    _random_on_grid(model, 6, seed=16)
    model.save(out)
    return {"weights": "uniform random on the 6-bit grid, seed 16 (not trained)"}


def save_conv8(out: Path) -> dict:
    model = build_conv8()
    _random_on_grid(model, 8, seed=8)
    model.save(out)
    return {"weights": "uniform random on the 8-bit grid, seed 8 (not trained)"}


TRAIN = {"jet_tagger": train_jet_tagger, "econt_encoder": train_econt_encoder, "random_mlp": save_random_mlp,
         "conv8": save_conv8}


def test_inputs(name: str, n: int, seed: int = 7) -> np.ndarray:
    """Real-valued inputs from the model's own data distribution."""
    if name in ("jet_tagger", "random_mlp"):
        return jet_data(n, seed)[0]
    if name == "conv8":
        return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, 8, 8, 1)).astype(np.float32)
    return econ_data(n, seed)
