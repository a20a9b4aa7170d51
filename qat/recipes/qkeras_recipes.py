"""QKeras QAT recipes: HAWQ-V3-style dyadic integer-only networks (and two power-of-two presets).

Targets QKeras 0.9 / TensorFlow 2.15 (Keras 2).  The same design as the Brevitas recipe
(qat/recipes_brevitas.py), so that both frameworks produce the same kind of integer network:

* Activations (the input quantizer and every hidden ReLU) have **power-of-two** scales:
  ``quantized_bits(bits, integer, alpha=1)`` / ``quantized_relu(bits, integer)``, step 2^k.
* Weights are symmetric narrow-range integers (int4: -7..7) with a **per-output-channel**
  scale computed like QKeras' ``alpha='auto'`` (absmax / (2^(bits-1)-1)) whose mantissa is
  then rounded to W bits (:class:`dyadic_quantized_bits`, W = ``mult_bits``): the scale is
  s_w = b / 2^c with 0 < b < 2^W.  The layer's requantization multiplier
  s_x * s_w / s_y = b / 2^(c + k_y - k_x) is then *exactly* a W-bit integer and a shift, and
  the importer (qat.importers.from_qkeras) emits ``requant(mult=b, shift=c + k_y - k_x)`` per channel.
* Biases are 32-bit integers in units of s_x * s_w (:class:`dyadic_bias`), used by the
  layer classes :class:`QDenseDyadic` / :class:`QConv2DDyadic` (QDense / QConv2D that hand
  the kernel's scale to the bias quantizer; the input exponent k_x is a layer argument).
* BatchNormalization is folded (HAWQ-V3 folds BN before quantization): train with BN,
  :func:`fold_batchnorm` into the preceding kernel and bias (float), rebuild without BN and
  fine-tune (:func:`train_dyadic`).

Bit-exactness of the QKeras (float32) forward
---------------------------------------------
Every product x_int * w_int * s_x * s_w of output channel o lies on the grid
2^(k_x - c[o]) and equals (x_int * w_int * b[o]) grid units; TensorFlow sums those in float32,
which is exact while every partial sum has at most 24 significant bits.  A sufficient,
summation-order-independent condition per output channel is

    (max|x_int| * sum_i |w_int[i, o]| + |bias_int[o]|) * b[o] <= 2^24

(b[o] in its reduced, odd form).  Under it the QKeras output equals the golden integer model
bit for bit (the quantized weights w_int * s_w are exact in float32 because
(bits - 1) + W <= 24 is enforced).  The importer records the bound per layer in
``net.meta["dyadic"]`` and warns when it is exceeded; :func:`train_dyadic` refuses such a
model unless ``allow_inexact=True``.  Example: 5-bit unsigned input, int4 weights, W = 8:
31 * 7 * fan_in * 255 <= 2^24 holds up to fan_in = 303.

Rounding: weights, biases and activations round half to even (``tf.round``); the weight
scale mantissa rounds up by default (``mantissa_rounding='ceil'``, so the largest weight
never saturates; Brevitas recipe default too) or half to even (``'round'``).
The straight-through estimator is written ``stop_gradient(q) + (x - stop_gradient(x))`` so
that the forward value is exactly q (QKeras' ``x + stop_gradient(q - x)`` is not, in float32).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from qkeras import QActivation, QConv2D, QDense
from qkeras.quantizers import quantized_bits, quantized_relu

from qat.recipes.qkeras_dyadic import (CUSTOM_OBJECTS_OWN, F32_EXACT_BITS, QConv2DDyadic,  # noqa: F401
                                      QDenseDyadic, custom_objects, dyadic_bias, dyadic_quantized_bits,
                                      dyadic_round)

L = tf.keras.layers

def load_model(path) -> tf.keras.Model:
    """Load a ``.h5`` model saved from a recipe model (no compile), through the importer's safe loader
    (its configuration is checked as plain data first: no Lambda layers, no unknown classes)."""
    from qat.importers.from_qkeras import load_model as safe_load_model

    return safe_load_model(path)


# ---- presets ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preset:
    """Quantizers of one recipe.  Bit widths in bits; ``*_integer`` = QKeras integer bits.

    kind: ``po2`` (weights quantized_bits alpha=1), ``auto_po2`` (per-channel power-of-two
    weight scales) or ``dyadic`` (per-channel W-bit dyadic scales, ``mult_bits`` = W).
    Input: quantized_bits(input_bits, input_integer, keep_negative=input_signed);
    hidden: quantized_relu(act_bits, act_integer); logits: quantized_bits(logits_bits,
    logits_integer).  Bias: dyadic_bias(bias_bits) for ``dyadic``, else
    quantized_bits(bias_bits, bias_integer).
    """

    name: str
    kind: str
    weight_bits: int
    act_bits: int
    act_integer: int
    input_bits: int = 5
    input_integer: int = 1
    input_signed: bool = False
    logits_bits: int = 8
    logits_integer: int = 4
    mult_bits: int | None = None
    mantissa_rounding: str = "ceil"
    bias_bits: int = 32
    bias_integer: int = 7

    @property
    def input_step_log2(self) -> int:
        return self.input_integer - (self.input_bits - int(self.input_signed))

    @property
    def act_step_log2(self) -> int:
        return self.act_integer - self.act_bits

    def input_quantizer(self):
        return quantized_bits(self.input_bits, self.input_integer, keep_negative=self.input_signed, alpha=1)

    def act_quantizer(self):
        return quantized_relu(self.act_bits, self.act_integer)

    def logits_quantizer(self):
        return quantized_bits(self.logits_bits, self.logits_integer, alpha=1)

    def kernel_quantizer(self):
        if self.kind == "dyadic":
            return dyadic_quantized_bits(self.weight_bits, mult_bits=self.mult_bits,
                                         mantissa_rounding=self.mantissa_rounding)
        if self.kind == "auto_po2":
            return quantized_bits(self.weight_bits, 0, alpha="auto_po2")
        return quantized_bits(self.weight_bits, 0, symmetric=1, alpha=1)

    def bias_quantizer(self, input_scale_log2: int):
        if self.kind == "dyadic":
            return dyadic_bias(self.bias_bits, input_scale_log2)
        return quantized_bits(self.bias_bits, self.bias_integer, alpha=1)


def dyadic_preset(weight_bits: int = 4, mult_bits: int = 8, act_bits: int = 4, act_integer: int = 2,
                  **kw: Any) -> Preset:
    """HAWQ-V3 dyadic preset: int``weight_bits`` weights, W = ``mult_bits``, po2 activations."""
    name = f"dyadic_int{weight_bits}" + ("" if mult_bits == 8 else f"_m{mult_bits}")
    return Preset(name, "dyadic", weight_bits, act_bits, act_integer, mult_bits=mult_bits, **kw)


PRESETS: dict[str, Preset] = {
    "int8": Preset("int8", "po2", 8, 8, 3, bias_bits=16, bias_integer=5),
    "int4_po2": Preset("int4_po2", "auto_po2", 4, 4, 2, bias_bits=16, bias_integer=5),
    "dyadic_int4": dyadic_preset(4, 8),
    "dyadic_int8": dyadic_preset(8, 8, act_bits=8, act_integer=3),
}


def get_preset(preset: Preset | str, **overrides: Any) -> Preset:
    """A preset by name (``dyadic_int4_m<W>`` gives W-bit multipliers) with field overrides."""
    if isinstance(preset, str):
        if preset in PRESETS:
            p = PRESETS[preset]
        elif preset.startswith("dyadic_int") and "_m" in preset:
            wb, mb = preset[len("dyadic_int"):].split("_m")
            p = dyadic_preset(int(wb), int(mb))
        else:
            raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)}, dyadic_int<B>_m<W>)")
    else:
        p = preset
    return replace(p, **overrides) if overrides else p


# ---- model builders ---------------------------------------------------------------------------

def _linear(p: Preset, kind: str, n: int, name: str, in_log2: int, bn: bool, quantized: bool, **conv):
    use_bias = not bn
    if not quantized:
        return (L.Dense(n, use_bias=use_bias, name=name) if kind == "dense"
                else L.Conv2D(n, use_bias=use_bias, name=name, **conv))
    kw = dict(use_bias=use_bias, kernel_quantizer=p.kernel_quantizer(),
              bias_quantizer=p.bias_quantizer(in_log2) if use_bias else None, name=name)
    if p.kind == "dyadic":
        return QDenseDyadic(n, **kw) if kind == "dense" else QConv2DDyadic(n, **conv, **kw)
    return QDense(n, **kw) if kind == "dense" else QConv2D(n, **conv, **kw)


def _act(p: Preset, name: str, quantized: bool, which: str):
    if not quantized:
        return L.ReLU(name=name) if which == "act" else L.Activation("linear", name=name)
    q = {"act": p.act_quantizer, "logits": p.logits_quantizer, "input": p.input_quantizer}[which]()
    return QActivation(q, name=name)


def build_mlp(input_dim: int = 64, hidden: Sequence[int] = (32,), n_classes: int = 10,
              preset: Preset | str = "dyadic_int4", bn: bool = False, quantized: bool = True,
              name: str = "mlp") -> tf.keras.Model:
    """Input -> quantizer -> [dense(h) -> (BN) -> quantized ReLU]* -> dense(n_classes) -> logits quantizer.

    Layer names: ``input_q``, ``fc{i}``, ``bn{i}``, ``act{i}``, ``logits``, ``logits_q`` (stable
    across ``bn`` and ``quantized`` so weights can be copied between variants).  With
    ``quantized=False`` the same graph in float (Dense, ReLU, no quantizers).
    """
    p = get_preset(preset)
    x = inp = L.Input((input_dim,), name="x")
    if quantized:
        x = _act(p, "input_q", True, "input")(x)
    k = p.input_step_log2
    for i, h in enumerate(hidden):
        x = _linear(p, "dense", h, f"fc{i}", k, bn, quantized)(x)
        if bn:
            x = L.BatchNormalization(name=f"bn{i}")(x)
        x = _act(p, f"act{i}", quantized, "act")(x)
        k = p.act_step_log2
    x = _linear(p, "dense", n_classes, "logits", k, False, quantized)(x)
    if quantized:
        x = _act(p, "logits_q", True, "logits")(x)
    return tf.keras.Model(inp, x, name=name)


def build_cnn(input_shape: tuple[int, int, int] = (8, 8, 1), filters: Sequence[int] = (4,), n_classes: int = 10,
              preset: Preset | str = "dyadic_int4", bn: bool = False, quantized: bool = True, kernel_size: int = 3,
              pool: int = 2, name: str = "cnn") -> tf.keras.Model:
    """Input -> quantizer -> [conv3x3 valid -> (BN) -> quantized ReLU]* -> maxpool -> flatten -> dense -> logits."""
    p = get_preset(preset)
    x = inp = L.Input(input_shape, name="x")
    if quantized:
        x = _act(p, "input_q", True, "input")(x)
    k = p.input_step_log2
    for i, f in enumerate(filters):
        x = _linear(p, "conv", f, f"conv{i}", k, bn, quantized, kernel_size=kernel_size, padding="valid")(x)
        if bn:
            x = L.BatchNormalization(name=f"bn{i}")(x)
        x = _act(p, f"act{i}", quantized, "act")(x)
        k = p.act_step_log2
    if pool > 1:
        x = L.MaxPooling2D(pool, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = _linear(p, "dense", n_classes, "logits", k, False, quantized)(x)
    if quantized:
        x = _act(p, "logits_q", True, "logits")(x)
    return tf.keras.Model(inp, x, name=name)


# ---- BatchNorm folding ------------------------------------------------------------------------

def _inbound_layer(layer):
    node = layer._inbound_nodes[0]
    inbound = node.inbound_layers
    return inbound[0] if isinstance(inbound, (list, tuple)) else inbound


def fold_batchnorm(bn_model: tf.keras.Model, target: tf.keras.Model) -> tf.keras.Model:
    """Copy ``bn_model``'s weights into ``target`` (same layer names, no BN), folding every
    BatchNormalization into the dense/conv layer feeding it (float64 arithmetic, float32 result):

        f = gamma / sqrt(var + eps);  W' = W * f (per output channel);  b' = (b - mean) * f + beta

    The fold uses the float (unquantized) kernels; the quantizers of ``target`` then act on
    the folded weights, as in HAWQ-V3.  Returns ``target``.
    """
    folded: dict[str, list[np.ndarray]] = {}
    for layer in bn_model.layers:
        if not isinstance(layer, L.BatchNormalization):
            continue
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if [a % len(layer.input.shape) for a in axis] != [len(layer.input.shape) - 1]:
            raise ValueError(f"fold_batchnorm: '{layer.name}' does not normalize the last axis")
        prev = _inbound_layer(layer)
        if not hasattr(prev, "kernel") or len(prev._outbound_nodes) != 1:
            raise ValueError(f"fold_batchnorm: '{layer.name}' must directly follow a dense/conv layer used once")
        c = int(layer.input.shape[-1])
        gamma = layer.gamma.numpy().astype(np.float64) if layer.scale else np.ones(c)
        beta = layer.beta.numpy().astype(np.float64) if layer.center else np.zeros(c)
        mean = layer.moving_mean.numpy().astype(np.float64)
        var = layer.moving_variance.numpy().astype(np.float64)
        f = gamma / np.sqrt(var + float(layer.epsilon))
        w = prev.kernel.numpy().astype(np.float64) * f
        b = prev.bias.numpy().astype(np.float64) if prev.use_bias else np.zeros(c)
        folded[prev.name] = [w.astype(np.float32), ((b - mean) * f + beta).astype(np.float32)]
    for layer in target.layers:
        if isinstance(layer, L.BatchNormalization):
            raise ValueError(f"fold_batchnorm: target model still has BatchNormalization '{layer.name}'")
        if not layer.weights:
            continue
        weights = folded.get(layer.name) or bn_model.get_layer(layer.name).get_weights()
        layer.set_weights(weights)
    return target


# ---- training ---------------------------------------------------------------------------------

def digits_data(test_size: float = 0.25, seed: int = 0, image: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's 8x8 digits (1797 samples) scaled to [0, 1] (pixel / 16), float32; a fixed split.
    Shapes (N, 64) or (N, 8, 8, 1) with ``image``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_size))
    te, tr = idx[:n_test], idx[n_test:]
    if image:
        x = x.reshape(-1, 8, 8, 1)
    return x[tr], y[tr], x[te], y[te]


@dataclass
class TrainResult:
    model: tf.keras.Model  # BN folded, fine-tuned, ready to import
    bn_model: tf.keras.Model  # trained with BatchNormalization
    preset: Preset
    accuracy: dict[str, float] = field(default_factory=dict)  # "bn" / "folded" / "final" on the test data
    dyadic: dict[str, dict] = field(default_factory=dict)  # importer's per-layer exactness record


def accuracy(model: tf.keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    pred = model.predict(x, batch_size=1024, verbose=0)
    return float(np.mean(np.argmax(pred, axis=-1) == y))


def _fit(model, x, y, epochs: int, lr: float, batch_size: int, seed: int) -> None:
    if epochs <= 0:
        return
    model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)


def train_dyadic(x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                 *, arch: str = "mlp", preset: Preset | str = "dyadic_int4", mult_bits: int | None = None,
                 hidden: Sequence[int] = (32,), filters: Sequence[int] = (4,), n_classes: int = 10,
                 epochs_bn: int = 2, epochs_finetune: int = 1, lr: float = 1e-2, lr_finetune: float = 3e-3,
                 batch_size: int = 64, seed: int = 0, allow_inexact: bool = False) -> TrainResult:
    """HAWQ-V3 recipe: QAT with BatchNormalization (``epochs_bn``), fold BN into the kernels and
    biases, rebuild without BN, fine-tune (``epochs_finetune``), then check with the importer
    that every dyadic layer is exactly representable with W-bit multipliers and that QKeras'
    float32 arithmetic is exact (raises ValueError otherwise unless ``allow_inexact``).

    Deterministic for a given ``seed`` (TensorFlow op determinism is switched on while training).
    """
    from tensorflow.python.framework import config as tf_config

    was_deterministic = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()
    try:
        return _train_dyadic(x, y, x_test, y_test, arch, preset, mult_bits, hidden, filters, n_classes, epochs_bn,
                             epochs_finetune, lr, lr_finetune, batch_size, seed, allow_inexact)
    finally:
        if not was_deterministic:  # leave the process as it was
            tf_config.disable_op_determinism()


def _train_dyadic(x, y, x_test, y_test, arch, preset, mult_bits, hidden, filters, n_classes, epochs_bn,
                  epochs_finetune, lr, lr_finetune, batch_size, seed, allow_inexact) -> TrainResult:
    from qat.importers.from_qkeras import import_qkeras

    p = get_preset(preset, **({"mult_bits": mult_bits} if mult_bits is not None else {}))
    tf.keras.utils.set_random_seed(seed)
    if arch == "mlp":
        def build(bn):
            return build_mlp(x.shape[-1], hidden, n_classes, p, bn=bn, name=f"mlp_{p.name}")
    elif arch == "cnn":
        def build(bn):
            return build_cnn(tuple(x.shape[1:]), filters, n_classes, p, bn=bn, name=f"cnn_{p.name}")
    else:
        raise ValueError(f"arch must be 'mlp' or 'cnn', got {arch!r}")
    bn_model = build(True)
    _fit(bn_model, x, y, epochs_bn, lr, batch_size, seed)
    model = fold_batchnorm(bn_model, build(False))
    res = TrainResult(model, bn_model, p)
    if x_test is not None:
        res.accuracy["bn"] = accuracy(bn_model, x_test, y_test)
        res.accuracy["folded"] = accuracy(model, x_test, y_test)
    _fit(model, x, y, epochs_finetune, lr_finetune, batch_size, seed + 1)
    if x_test is not None:
        res.accuracy["final"] = accuracy(model, x_test, y_test)
    net = import_qkeras(model, mult_bits=p.mult_bits if p.kind == "dyadic" else None)
    res.dyadic = dict(net.meta.get("dyadic", {}))
    bad = [f"{k} (needs {v['f32_bits']} bits)" for k, v in res.dyadic.items() if not v["f32_exact"]]
    if bad and not allow_inexact:
        raise ValueError(f"QKeras' float32 forward is not provably exact for layer(s) {', '.join(bad)}: "
                         f"(max|x|*sum|w| + |bias|) * b must stay <= 2^{F32_EXACT_BITS}; use fewer bits "
                         f"(weights, activations, mult_bits) or pass allow_inexact=True")
    return res


# ---- binary networks (w1a1) and the MST regulariser -------------------------------------------

def _clip_unit(w):
    """BinaryConnect: latent weights stay in [-1, 1], so a sign can still flip late in training."""
    return tf.clip_by_value(w, -1.0, 1.0)


def build_bnn_mlp(input_dim: int = 64, hidden: Sequence[int] = (256, 256), n_classes: int = 10,
                  name: str = "bnn_mlp") -> tf.keras.Model:
    """TFC-w1a1 in spirit: binary(input) -> [binary QDense (no bias) -> BN -> binary]* -> binary QDense
    (integer logits).  Imports as bdense with fused thresholds (qat.importers.from_qkeras)."""
    from qkeras.quantizers import binary

    x = inp = L.Input((input_dim,), name="x")
    x = QActivation(binary(alpha=1), name="input_bin")(x)
    for i, h in enumerate(hidden):
        x = QDense(h, kernel_quantizer=binary(alpha=1), use_bias=False, name=f"bfc{i}", kernel_constraint=_clip_unit)(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = QActivation(binary(alpha=1), name=f"bin{i}")(x)
    x = QDense(n_classes, kernel_quantizer=binary(alpha=1), use_bias=False, kernel_constraint=_clip_unit,
               name="logits")(x)
    return tf.keras.Model(inp, x, name=name)


def build_bnn_cnn(input_shape: tuple[int, int, int] = (8, 8, 1), filters: Sequence[int] = (16, 32),
                  n_classes: int = 10, name: str = "bnn_cnn") -> tf.keras.Model:
    """CNV-w1a1 in spirit (small): binary(input) -> [binary 3x3 valid QConv2D -> BN -> binary]* ->
    flatten -> binary QDense (integer logits)."""
    from qkeras.quantizers import binary

    x = inp = L.Input(input_shape, name="x")
    x = QActivation(binary(alpha=1), name="input_bin")(x)
    for i, f in enumerate(filters):
        x = QConv2D(f, 3, kernel_quantizer=binary(alpha=1), use_bias=False, name=f"bconv{i}", kernel_constraint=_clip_unit)(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = QActivation(binary(alpha=1), name=f"bin{i}")(x)
    x = L.Flatten(name="flatten")(x)
    x = QDense(n_classes, kernel_quantizer=binary(alpha=1), use_bias=False, kernel_constraint=_clip_unit,
               name="logits")(x)
    return tf.keras.Model(inp, x, name=name)


def binary_kernels(model: tf.keras.Model) -> list:
    """The binary QDense/QConv2D layers whose output channels a spanning tree can share (all but the last)."""
    return [la for la in model.layers if isinstance(la, (QDense, QConv2D))][:-1]


class MSTRegularizer(tf.keras.callbacks.Callback):
    """The Brevitas recipe's MST surrogate for Keras: over the current tree's edges (p, c) of each
    layer's output channels, sum_i (1 - f * tanh(b*w_p,i) * tanh(b*w_c,i)) / 2 per weight (f = -1
    on a negated edge), ``lam`` times, added to the loss with ``model.add_loss``; the callback
    rebuilds the depth-bounded trees from the latent kernels' signs every ``every`` batches
    (hls.engine.spanning_tree).  Roots point at themselves with f = 0 (fixed-size tensors)."""

    def __init__(self, model: tf.keras.Model, lam: float, every: int = 50, max_depth: int | None = None,
                 sharpness: float = 3.0):
        super().__init__()
        self.layers_ = binary_kernels(model)
        self.lam, self.every, self.max_depth, self.sharpness = float(lam), int(every), max_depth, sharpness
        self.vars = []
        for la in self.layers_:
            c = int(la.kernel.shape[-1])
            self.vars.append((tf.Variable(np.arange(c), dtype=tf.int32, trainable=False),
                              tf.Variable(np.zeros(c, np.float32), trainable=False)))
        self.rebuild()
        if self.lam:  # lam = 0: measure only
            model.add_loss(self.loss)
        self.batches = 0

    def _cols(self, la) -> tf.Tensor:
        k = la.kernel
        return tf.reshape(k, (-1, k.shape[-1]))  # (fan-in, channels)

    def rebuild(self) -> None:
        from hls.engine.spanning_tree import hamming, spanning_tree

        for la, (par, sgn) in zip(self.layers_, self.vars):
            bits = (self._cols(la).numpy() >= 0).astype(np.int64)
            dist, flip = hamming(bits)
            tree = spanning_tree(dist, np.full(bits.shape[1], bits.shape[0]),
                                 None if self.max_depth is None else self.max_depth + 1, flip)
            p = np.where(tree.parent >= 0, tree.parent, np.arange(bits.shape[1]))
            par.assign(p.astype(np.int32))
            sgn.assign(np.where(tree.parent < 0, 0.0, np.where(tree.flip, -1.0, 1.0)).astype(np.float32))

    def distance(self) -> list[int]:
        self.rebuild()
        out = []
        for la, (par, sgn) in zip(self.layers_, self.vars):
            b = self._cols(la).numpy() >= 0
            p, s = par.numpy(), sgn.numpy()
            diff = (b != b[:, p]).sum(0)
            out.append(int(np.where(s > 0, diff, np.where(s < 0, b.shape[0] - diff, 0)).sum()))
        return out

    def loss(self) -> tf.Tensor:
        total = tf.constant(0.0)
        for la, (par, sgn) in zip(self.layers_, self.vars):
            w = self._cols(la)
            t = tf.tanh(self.sharpness * w / (tf.stop_gradient(tf.reduce_mean(tf.abs(w))) + 1e-8))
            agree = tf.reduce_sum(t * tf.gather(t, par, axis=1), axis=0) * sgn
            n_edges = tf.reduce_sum(tf.abs(sgn))
            total += (tf.cast(tf.shape(w)[0], tf.float32) * n_edges - tf.reduce_sum(agree)) / 2.0 / \
                tf.cast(tf.size(w), tf.float32)
        return self.lam * total

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.batches += 1
        if self.batches % self.every == 0:
            self.rebuild()


def train_bnn(model: tf.keras.Model, x: np.ndarray, y: np.ndarray, epochs: int = 10, lr: float = 5e-3,
              batch_size: int = 64, seed: int = 0, lam: float = 0.0, tree_every: int = 50,
              mst_depth: int | None = None) -> dict:
    """Cross-entropy (+ ``lam`` * MST surrogate, :class:`MSTRegularizer`), Adam; returns
    {"loss": per epoch, "mst_distance": per layer at the end}."""
    tf.keras.utils.set_random_seed(seed)
    reg = MSTRegularizer(model, lam, tree_every, mst_depth) if lam else None
    model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    h = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                  callbacks=[reg] if reg else [])
    dist = reg or MSTRegularizer(model, 0.0, tree_every, mst_depth)
    return {"loss": [float(v) for v in h.history["loss"]], "mst_distance": dist.distance()}
