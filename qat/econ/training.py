"""QAT recipe for the ECON-T style autoencoder (QKeras encoder, float decoder).

Encoder (what goes to hardware; the published QKeras quantization, BRIEF
"ECON-T style autoencoder"):

    input 8x8x1 -> QActivation(quantized_bits(10, 3, alpha=1))            "input_qa"
      -> QConv2D(8, 3x3, stride 2, 'same'), weights/biases quantized_bits(6, 0, alpha=1)   "conv2d"
      -> QActivation(quantized_relu(11, 3))                                "conv2d_act"
      -> Flatten (128)
      -> QDense(16), weights/biases quantized_bits(6, 0, alpha=1)          "encoded"
      -> QActivation(quantized_relu(9, 1))                                 "encoded_act" (latent)

The float reference model has the same shape with Conv2D/Dense and ReLU.

Decoder (off-detector, float, training and evaluation only):

    latent 16 -> Dense(128, relu) -> Reshape(4, 4, 8)
      -> Conv2DTranspose(8, 3x3, stride 2, 'same', relu) -> Conv2D(1, 3x3, 'same')   (8x8x1 logits)
      -> Flatten -> fixed 64->48 selection of the 48 cell positions (non-trainable Dense, no bias)
      -> Softmax: a normalised 48-cell distribution.

Loss: the telescope loss on normalised 48-cell distributions (y sums to 1):

    L = 4 * mean_cells (y - yh)^2 max(y, yh)
      + 2 * mean_supercells w_s (Y_s - Yh_s)^2 max(Y_s, Yh_s)      (36 2x2 super-cells, econ_data.super_cells)
      + 1 * mean_thirds (T - Th)^2 max(T, Th)                       (3 module thirds of 16 cells)

where Y_s / T are sums over the cells of a super-cell / third and w_s =
econ_data.super_cell_weights() (1/4 * sum over its cells of 1/n_c, n_c = how
many super-cells contain cell c).  Same form and term weights (4, 2, 1) as
the published ECON-T training.

Training: Adam, early stopping on the validation loss (restoring the best
weights), fixed seeds (``tf.keras.utils.set_random_seed``, deterministic TF
ops).  Data from :mod:`qat.econ.data`: training seed ``data_seed``,
validation ``data_seed + 1``; evaluation scripts use ``data_seed + 2``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qat.econ import data as D

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TERM_WEIGHTS = (4.0, 2.0, 1.0)  # cells, 2x2 super-cells, thirds


def telescope_matrices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(48, 36) cell->super-cell, (36,) super-cell weights, (48, 3) cell->third."""
    sc = D.super_cells()
    m_sc = np.zeros((D.N_CELLS, len(sc)))
    for s, cells in enumerate(sc):
        m_sc[cells, s] = 1.0
    m_th = np.zeros((D.N_CELLS, D.N_THIRDS))
    m_th[np.arange(D.N_CELLS), D.third_of_cell()] = 1.0
    return m_sc, D.super_cell_weights(), m_th


def telescope_terms_np(y: np.ndarray, yh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three telescope terms per module (numpy, float64), inputs (N, 48)."""
    y = np.asarray(y, dtype=np.float64)
    yh = np.asarray(yh, dtype=np.float64)
    m_sc, w_sc, m_th = telescope_matrices()

    def term(a, b, w=None):
        t = (a - b) ** 2 * np.maximum(a, b)
        return (t * w).mean(axis=-1) if w is not None else t.mean(axis=-1)

    return term(y, yh), term(y @ m_sc, yh @ m_sc, w_sc), term(y @ m_th, yh @ m_th)


def telescope_loss_np(y: np.ndarray, yh: np.ndarray) -> np.ndarray:
    """Telescope loss per module (numpy reference)."""
    t1, t2, t3 = telescope_terms_np(y, yh)
    return TERM_WEIGHTS[0] * t1 + TERM_WEIGHTS[1] * t2 + TERM_WEIGHTS[2] * t3


def telescope_loss(y_true, y_pred):
    """Telescope loss per module (TensorFlow), for ``model.compile(loss=...)``."""
    import tensorflow as tf

    m_sc, w_sc, m_th = telescope_matrices()
    y_pred = tf.reshape(y_pred, (-1, D.N_CELLS))
    y_true = tf.reshape(tf.cast(y_true, y_pred.dtype), (-1, D.N_CELLS))
    msc = tf.constant(m_sc, y_pred.dtype)
    mth = tf.constant(m_th, y_pred.dtype)
    wsc = tf.constant(w_sc, y_pred.dtype)

    def term(a, b):
        return tf.square(a - b) * tf.maximum(a, b)

    t1 = tf.reduce_mean(term(y_true, y_pred), axis=-1)
    t2 = tf.reduce_mean(term(tf.matmul(y_true, msc), tf.matmul(y_pred, msc)) * wsc, axis=-1)
    t3 = tf.reduce_mean(term(tf.matmul(y_true, mth), tf.matmul(y_pred, mth)), axis=-1)
    return TERM_WEIGHTS[0] * t1 + TERM_WEIGHTS[1] * t2 + TERM_WEIGHTS[2] * t3


# ---- models ------------------------------------------------------------------------------------

LATENT = 16


def build_encoder(quantized: bool = True, name: str | None = None):
    """The encoder (8x8x1 -> 16); ``quantized`` selects the QKeras (published) or float version."""
    import tensorflow as tf

    L = tf.keras.layers
    inp = L.Input((8, 8, 1), name="wafer")
    if quantized:
        from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

        def wq():
            return dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))

        x = QActivation(quantized_bits(10, 3, alpha=1), name="input_qa")(inp)
        x = QConv2D(8, (3, 3), strides=(2, 2), padding="same", name="conv2d", **wq())(x)
        x = QActivation(quantized_relu(11, 3), name="conv2d_act")(x)
        x = L.Flatten(name="flatten")(x)
        x = QDense(LATENT, name="encoded", **wq())(x)
        x = QActivation(quantized_relu(9, 1), name="encoded_act")(x)
    else:
        x = L.Conv2D(8, (3, 3), strides=(2, 2), padding="same", name="conv2d")(inp)
        x = L.Activation("relu", name="conv2d_act")(x)
        x = L.Flatten(name="flatten")(x)
        x = L.Dense(LATENT, name="encoded")(x)
        x = L.Activation("relu", name="encoded_act")(x)
    return tf.keras.Model(inp, x, name=name or ("econ_encoder" if quantized else "econ_float_encoder"))


def selection_matrix() -> np.ndarray:
    """(64, 48) 0/1 matrix picking the 48 cell positions out of the flattened 8x8 image."""
    m = np.zeros((64, D.N_CELLS), dtype=np.float32)
    m[D.CELL_TO_8X8, np.arange(D.N_CELLS)] = 1.0
    return m


def build_decoder(name: str = "econ_decoder"):
    """Float decoder: latent 16 -> normalised 48-cell distribution."""
    import tensorflow as tf

    L = tf.keras.layers
    z = L.Input((LATENT,), name="latent")
    x = L.Dense(128, activation="relu", name="dec_dense")(z)
    x = L.Reshape((4, 4, 8), name="dec_reshape")(x)
    x = L.Conv2DTranspose(8, (3, 3), strides=(2, 2), padding="same", activation="relu", name="dec_convT")(x)
    x = L.Conv2D(1, (3, 3), padding="same", name="dec_conv")(x)
    x = L.Flatten(name="dec_flatten")(x)
    sel = L.Dense(D.N_CELLS, use_bias=False, trainable=False, name="cells48")
    x = sel(x)
    sel.set_weights([selection_matrix()])
    x = L.Softmax(name="softmax")(x)
    return tf.keras.Model(z, x, name=name)


def build_autoencoder(encoder, decoder):
    import tensorflow as tf

    inp = tf.keras.Input((8, 8, 1), name="ae_input")
    return tf.keras.Model(inp, decoder(encoder(inp)), name=f"{encoder.name}_ae")


# ---- training ----------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    quantized: bool = True
    n_train: int = 40000
    n_val: int = 8000
    data_seed: int = 1
    seed: int = 0  # TensorFlow / weight initialisation
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 3e-3
    patience: int = 4  # early stopping on val_loss
    min_delta: float = 0.0
    data_params: D.EconDataParams = field(default_factory=D.EconDataParams)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_params"] = self.data_params.to_dict()
        return d


@dataclass
class TrainResult:
    encoder: object
    decoder: object
    history: dict
    seconds: float
    epochs_run: int
    best_epoch: int
    config: TrainConfig


def set_seeds(seed: int) -> None:
    import tensorflow as tf

    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    tf.keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass


def train(cfg: TrainConfig, train_data: D.ModuleBatch | None = None, val_data: D.ModuleBatch | None = None,
          verbose: int = 0) -> TrainResult:
    """Train encoder + float decoder with the telescope loss; returns the trained pair."""
    import tensorflow as tf

    t0 = time.perf_counter()
    set_seeds(cfg.seed)
    tr = train_data if train_data is not None else D.generate(cfg.n_train, cfg.data_seed, cfg.data_params)
    va = val_data if val_data is not None else D.generate(cfg.n_val, cfg.data_seed + 1, cfg.data_params)
    encoder = build_encoder(cfg.quantized)
    decoder = build_decoder("econ_decoder" if cfg.quantized else "econ_float_decoder")
    ae = build_autoencoder(encoder, decoder)
    ae.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate), loss=telescope_loss)
    stop = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, min_delta=cfg.min_delta,
                                            restore_best_weights=True)
    hist = ae.fit(tr.x, tr.y.astype(np.float32), validation_data=(va.x, va.y.astype(np.float32)),
                  epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, callbacks=[stop], verbose=verbose)
    h = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best = int(np.argmin(h["val_loss"])) + 1 if h.get("val_loss") else len(h.get("loss", []))
    return TrainResult(encoder, decoder, h, time.perf_counter() - t0, len(h.get("loss", [])), best, cfg)


# ---- checkpoints -------------------------------------------------------------------------------

def save_checkpoint(directory: str | Path, prefix: str, encoder, decoder, info: dict | None = None) -> dict:
    """Write ``{prefix}_encoder.h5`` (full model, what ``qrtl convert`` takes),
    ``{prefix}_encoder.json`` + ``{prefix}_encoder_weights.h5`` (hls4ml example-model layout),
    ``{prefix}_decoder.h5`` and, with ``info``, ``{prefix}_train.json``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = {
        "encoder": d / f"{prefix}_encoder.h5",
        "encoder_json": d / f"{prefix}_encoder.json",
        "encoder_weights": d / f"{prefix}_encoder_weights.h5",
        "decoder": d / f"{prefix}_decoder.h5",
    }
    encoder.save(paths["encoder"], include_optimizer=False)
    paths["encoder_json"].write_text(encoder.to_json())
    encoder.save_weights(paths["encoder_weights"])
    decoder.save(paths["decoder"], include_optimizer=False)
    if info is not None:
        paths["info"] = d / f"{prefix}_train.json"
        paths["info"].write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return {k: str(v) for k, v in paths.items()}


def load_checkpoint(directory: str | Path, prefix: str):
    """(encoder, decoder) saved by :func:`save_checkpoint` (encoder through qat's QKeras loader)."""
    import tensorflow as tf

    from qat.importers.from_qkeras import load_model

    d = Path(directory)
    encoder = load_model(d / f"{prefix}_encoder.h5")
    decoder = tf.keras.models.load_model(d / f"{prefix}_decoder.h5", compile=False)
    return encoder, decoder
