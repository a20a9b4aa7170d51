"""QKeras models and test inputs for the importer tests (fixed seeds).

Weights are random but chosen so that the *quantized* weights cover the whole
grid of their quantizer (every level from the most negative to the most
positive appears when the tensor is large enough), with sub-step noise, a few
exact rounding ties and a few out-of-range values so that the quantizer
really rounds and saturates.  BatchNormalization layers get random moving
mean/variance and gamma/beta (some gamma negative).

Input generators draw from the whole range of the input type: exact grid
values, exact rounding ties of the input quantizer, values beyond both ends
(saturation), the minimum and maximum, all-zero rows and negative zero.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

N_INPUTS = 12_000  # rows per check (>= 10,000)


# ---- weights ----------------------------------------------------------------------

def grid_values(rng: np.random.Generator, shape, lo: int, hi: int, step: float, noise: bool = True,
                specials: bool = True) -> np.ndarray:
    """float32 values whose quantization (round half even, saturate to [lo, hi])
    uses every level in [lo, hi] (when the tensor has enough elements)."""
    size = int(np.prod(shape))
    levels = np.arange(lo, hi + 1)
    ints = rng.integers(lo, hi + 1, size=size)
    k = min(size, levels.size)
    pos = rng.permutation(size)[:k]
    ints[pos] = rng.permutation(levels)[:k] if k < levels.size else levels
    vals = ints.astype(np.float64)
    if noise:
        vals += rng.uniform(-0.45, 0.45, size=size)
    if specials and size >= levels.size + 8:
        free = rng.permutation(np.setdiff1d(np.arange(size), pos))
        n = max(2, size // 50)
        ties, far = free[:n], free[n:n + 2]
        vals[ties] = ints[ties] + 0.5 * rng.choice([-1, 1], size=n)  # exact ties
        vals[far] = np.array([hi + 3.7, lo - 3.7])  # saturate
    return (vals * step).astype(np.float32).reshape(shape)


def bits_step(bits: int, integer: int, keep_negative: bool = True) -> tuple[int, int, float]:
    """(lo, hi, step) of quantized_bits(bits, integer, alpha=1)."""
    unsigned = bits - int(keep_negative)
    lo = -(1 << unsigned) if keep_negative else 0
    return lo, (1 << unsigned) - 1, 2.0 ** (integer - unsigned)


def set_linear(layer, rng, bits=6, integer=0, bias_bits=None, bias_integer=None, po2_channels=False):
    """Random kernel/bias for a QDense/QConvND with quantized_bits(bits, integer)."""
    kshape = tuple(int(d) for d in layer.kernel.shape)
    lo, hi, step = bits_step(bits, integer)
    k = grid_values(rng, kshape, lo, hi, step)
    if po2_channels:  # per-channel magnitudes 1, 1/2, 1/4, ... for alpha='auto_po2'/'auto'
        k = (k * (2.0 ** -(np.arange(kshape[-1]) % 4))).astype(np.float32)
    w = [k]
    if layer.use_bias:
        bb = bits if bias_bits is None else bias_bits
        bi = integer if bias_integer is None else bias_integer
        blo, bhi, bstep = bits_step(bb, bi)
        w.append(grid_values(rng, (kshape[-1],), blo, bhi, bstep, specials=False))
    layer.set_weights(w)


def set_binary_kernel(layer, rng):
    kshape = tuple(int(d) for d in layer.kernel.shape)
    k = rng.normal(size=kshape).astype(np.float32)
    k.reshape(-1)[: max(1, k.size // 40)] = 0.0  # sign(0) -> +1 in QKeras binary
    w = [k]
    if layer.use_bias:
        w.append(rng.normal(size=(kshape[-1],)).astype(np.float32))
    layer.set_weights(w)


def set_bn(layer, rng, center_scale: float = 1.0):
    """Random non-trivial BatchNorm parameters; about a third of gamma negative."""
    c = int(layer.moving_mean.shape[-1])
    gamma = rng.uniform(0.3, 2.5, size=c) * np.where(rng.random(c) < 0.35, -1.0, 1.0)
    gamma[0] = -abs(gamma[0])
    if c > 1:
        gamma[1] = abs(gamma[1])
    beta = rng.normal(0, 0.8, size=c)
    mean = rng.normal(0, center_scale, size=c)
    var = rng.uniform(0.05, 3.0, size=c) * center_scale ** 2
    vals = {"gamma": gamma, "beta": beta, "moving_mean": mean, "moving_variance": var}
    layer.set_weights([vals[w.name.split("/")[-1].split(":")[0]].astype(np.float32) for w in layer.weights])


# ---- models -----------------------------------------------------------------------------

def _tf():
    import tensorflow as tf

    return tf


def _q():
    import qkeras

    return qkeras


def _seed(seed: int) -> np.random.Generator:
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)
    return np.random.default_rng(seed)


def qb(bits, integer, **kw):
    return _q().quantized_bits(bits, integer, alpha=1, **kw)


def jet_tagger(input_quantizer: bool = True, seed: int = 1):
    """16-64-32-32-5 MLP, 6-bit weights/biases, quantized_relu(6, .), final softmax."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((16,), name="features")
    x = q.QActivation(qb(12, 4), name="input_q")(inp) if input_quantizer else inp
    for i, (n, relu_int) in enumerate([(64, 3), (32, 2), (32, 2)]):
        x = q.QDense(n, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name=f"fc{i + 1}")(x)
        x = q.QActivation(q.quantized_relu(6, relu_int), name=f"relu{i + 1}")(x)
    x = q.QDense(5, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="output")(x)
    x = L.Activation("softmax", name="softmax")(x)
    model = tf.keras.Model(inp, x, name="jet_tagger" if input_quantizer else "jet_tagger_raw")
    for layer in model.layers:
        if isinstance(layer, q.QDense):
            set_linear(layer, rng)
    return model


def cnn2d(seed: int = 2):
    """QConv2D same/valid, stride 1/2, MaxPooling2D (valid and same), AveragePooling2D, Flatten, QDense."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((13, 13, 2), name="image")
    x = q.QActivation(qb(8, 2), name="input_q")(inp)
    x = q.QConv2D(4, (3, 3), padding="same", strides=1, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv_same_s1")(x)
    x = q.QActivation(q.quantized_relu(6, 2), name="relu1")(x)
    x = L.MaxPooling2D((2, 2), padding="same", name="maxpool_same")(x)  # 13 -> 7, padded border
    x = q.QConv2D(6, (3, 3), padding="valid", strides=1, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv_valid_s1")(x)  # 7 -> 5
    x = q.QActivation(q.quantized_relu(6, 2), name="relu2")(x)
    x = q.QConv2D(6, (2, 2), padding="same", strides=2, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv_same_s2")(x)  # 5 -> 3
    x = q.QActivation(q.quantized_relu(6, 2), name="relu3")(x)
    x = q.QConv2D(8, (2, 2), padding="valid", strides=2, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv_valid_s2")(x)  # 3 -> 1
    x = q.QActivation(q.quantized_relu(5, 2), name="relu4")(x)
    x2 = q.QConv2D(4, (3, 3), padding="same", strides=1, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                   name="conv_b")(x)
    x2 = q.QActivation(q.quantized_relu(6, 2), name="relu5")(x2)
    x = L.Flatten(name="flatten")(x2)
    x = q.QDense(5, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc")(x)
    model = tf.keras.Model(inp, x, name="cnn2d")
    for layer in model.layers:
        if isinstance(layer, (q.QDense, q.QConv2D)):
            set_linear(layer, rng)
    return model


def cnn2d_avgpool(seed: int = 3):
    """QConv2D + MaxPooling2D + AveragePooling2D(2x2) + Flatten + QDense."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((12, 12, 1), name="image")
    x = q.QActivation(qb(8, 3), name="input_q")(inp)
    x = q.QConv2D(4, (3, 3), padding="same", kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="conv1")(x)
    x = q.QActivation(q.quantized_relu(6, 3), name="relu1")(x)
    x = L.MaxPooling2D((2, 2), name="maxpool")(x)  # 6x6
    x = q.QConv2D(8, (3, 3), padding="valid", strides=1, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv2")(x)  # 4x4
    x = q.QActivation(q.quantized_relu(6, 2), name="relu2")(x)
    x = L.AveragePooling2D((2, 2), name="avgpool")(x)  # 2x2
    x = L.Flatten(name="flatten")(x)
    x = q.QDense(6, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc")(x)
    model = tf.keras.Model(inp, x, name="cnn2d_avgpool")
    for layer in model.layers:
        if isinstance(layer, (q.QDense, q.QConv2D)):
            set_linear(layer, rng)
    return model


def cnn1d(seed: int = 4):
    """QConv1D (same/valid, stride 1/2) + MaxPooling1D + Flatten + QDense."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((24, 3), name="series")
    x = q.QActivation(qb(8, 3), name="input_q")(inp)
    x = q.QConv1D(8, 5, padding="same", strides=1, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv1")(x)
    x = q.QActivation(q.quantized_relu(6, 3), name="relu1")(x)
    x = L.MaxPooling1D(2, name="maxpool1")(x)  # 12
    x = q.QConv1D(6, 3, padding="valid", strides=2, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv2")(x)  # 5
    x = q.QActivation(q.quantized_relu(6, 2), name="relu2")(x)
    x = L.MaxPooling1D(2, strides=1, padding="same", name="maxpool2")(x)
    x = q.QConv1D(4, 2, padding="same", strides=2, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv3")(x)  # 3
    x = q.QActivation(q.quantized_relu(6, 2), name="relu3")(x)
    x = L.Flatten(name="flatten")(x)
    x = q.QDense(4, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc")(x)
    model = tf.keras.Model(inp, x, name="cnn1d")
    for layer in model.layers:
        if isinstance(layer, (q.QDense, q.QConv1D)):
            set_linear(layer, rng)
    return model


def econt_encoder(seed: int = 5):
    """ECON-T style encoder (published QKeras variant)."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((8, 8, 1), name="wafer")
    x = q.QActivation(qb(10, 3), name="input_qa")(inp)
    x = q.QConv2D(8, (3, 3), strides=(2, 2), padding="same", kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  name="conv2d")(x)
    x = q.QActivation(q.quantized_relu(11, 3), name="conv2d_act")(x)
    x = L.Flatten(name="flatten")(x)
    x = q.QDense(16, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="encoded")(x)
    x = q.QActivation(q.quantized_relu(9, 1), name="encoded_act")(x)
    model = tf.keras.Model(inp, x, name="econt_encoder")
    for layer in model.layers:
        if isinstance(layer, (q.QDense, q.QConv2D)):
            set_linear(layer, rng)
    return model


def inline_activation(seed: int = 6):
    """QDense(activation=quantized_relu) / QConv2D(activation=quantized_bits); Activation('relu') then
    QActivation(quantized_bits); Dropout; Reshape."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((20,), name="x")
    x = q.QActivation(qb(9, 3), name="input_q")(inp)
    x = q.QDense(32, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), activation=q.quantized_relu(7, 3),
                 name="fc_inline")(x)
    x = L.Dropout(0.3, name="dropout")(x)
    x = L.Reshape((4, 4, 2), name="reshape")(x)
    x = q.QConv2D(4, (2, 2), padding="same", kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0),
                  activation=q.quantized_bits(7, 2, alpha=1), name="conv_inline")(x)
    x = L.Flatten(name="flatten")(x)
    x = q.QDense(16, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc2")(x)
    x = L.Activation("relu", name="relu")(x)
    x = q.QActivation(q.quantized_bits(6, 2, alpha=1), name="qbits_after_relu")(x)
    x = L.Dropout(0.5, name="dropout2")(x)
    x = q.QDense(5, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="out")(x)
    model = tf.keras.Model(inp, x, name="inline_activation")
    for layer in model.layers:
        if isinstance(layer, (q.QDense, q.QConv2D)):
            set_linear(layer, rng)
    return model


def batchnorm(seed: int = 7):
    """QDense -> BatchNormalization -> quantized_relu and QConv2D -> QBatchNormalization -> quantized_relu
    (threshold path), random BN statistics with negative gamma."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((32,), name="x")
    x = q.QActivation(qb(8, 2), name="input_q")(inp)
    x = q.QDense(36, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = q.QActivation(q.quantized_relu(4, 2), name="relu1")(x)
    x = L.Reshape((3, 3, 4), name="reshape")(x)
    x = q.QConv2D(6, (2, 2), padding="same", kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="conv")(x)
    x = q.QBatchNormalization(gamma_quantizer=None, beta_quantizer=None, mean_quantizer=None,
                              variance_quantizer=None, name="qbn")(x)
    x = q.QActivation(q.quantized_relu(5, 2), name="relu2")(x)
    x = q.QConv2D(4, (2, 2), padding="valid", kernel_quantizer=qb(6, 0), use_bias=False, name="conv_nobias")(x)
    x = q.QBatchNormalization(name="qbn_po2")(x)  # default po2 quantizers of QKeras
    x = q.QActivation(q.quantized_bits(5, 2, alpha=1), name="qbits")(x)
    x = L.Flatten(name="flatten")(x)
    x = q.QDense(5, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="out")(x)
    model = tf.keras.Model(inp, x, name="batchnorm")
    for layer in model.layers:
        if isinstance(layer, (q.QDense, q.QConv2D)):
            set_linear(layer, rng)
    set_bn(model.get_layer("bn1"), rng, 3.0)
    set_bn(model.get_layer("qbn"), rng, 3.0)
    set_bn(model.get_layer("qbn_po2"), rng, 3.0)
    return model


def binary_ternary_activations(seed: int = 8):
    """binary and ternary QActivations between integer QDense layers."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((16,), name="x")
    x = q.QActivation(qb(8, 2), name="input_q")(inp)
    x = q.QDense(24, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc1")(x)
    x = q.QActivation(q.binary(), name="binary_act")(x)
    x = q.QDense(20, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc2")(x)
    x = q.QActivation(q.ternary(threshold=0.5), name="ternary_act")(x)
    x = q.QDense(12, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc3")(x)
    x = q.QActivation(q.ternary(), name="ternary_default")(x)
    x = q.QDense(12, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc4")(x)
    x = q.QActivation(q.binary(alpha=1), name="binary_alpha1")(x)
    x = q.QDense(5, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="out")(x)
    model = tf.keras.Model(inp, x, name="binary_ternary")
    for layer in model.layers:
        if isinstance(layer, q.QDense):
            set_linear(layer, rng, bias_bits=6, bias_integer=2)
    return model


def binary_network(seed: int = 9):
    """BNN: QActivation(binary) -> QDense(binary kernel) -> BN -> QActivation(binary) ... -> final QDense."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((48,), name="x")
    x = q.QActivation(q.binary(alpha=1), name="input_bin")(inp)
    for i, n in enumerate([64, 32]):
        x = q.QDense(n, kernel_quantizer=q.binary(alpha=1), use_bias=False, name=f"bfc{i + 1}")(x)
        x = L.BatchNormalization(name=f"bn{i + 1}")(x)
        x = q.QActivation(q.binary(alpha=1), name=f"bin{i + 1}")(x)
    x = q.QDense(10, kernel_quantizer=q.binary(alpha=1), bias_quantizer=qb(8, 3), name="out")(x)
    model = tf.keras.Model(inp, x, name="bnn")
    for layer in model.layers:
        if isinstance(layer, q.QDense):
            set_binary_kernel(layer, rng)
        if isinstance(layer, L.BatchNormalization):
            set_bn(layer, rng, 4.0)
    lo, hi, step = bits_step(8, 3)
    out = model.get_layer("out")
    out.set_weights([out.get_weights()[0], grid_values(rng, (10,), lo, hi, step, specials=False)])
    return model


def binary_conv_network(seed: int = 17):
    """Binary CNN: binary QConv2D "valid" (+BN+binary fused into a popcount threshold), binary QConv2D
    "same" (zero padding: integer conv + threshold), MaxPooling2D on binary values, binary QDense."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((6, 6, 3), name="x")
    x = q.QActivation(q.binary(alpha=1), name="input_bin")(inp)
    x = q.QConv2D(8, 3, kernel_quantizer=q.binary(alpha=1), use_bias=False, name="bconv1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = q.QActivation(q.binary(alpha=1), name="bin1")(x)
    x = q.QConv2D(6, 2, strides=1, padding="same", kernel_quantizer=q.binary(alpha=1), use_bias=False,
                  name="bconv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = q.QActivation(q.binary(alpha=1), name="bin2")(x)
    x = L.MaxPooling2D(2, name="maxpool")(x)
    x = L.Flatten(name="flatten")(x)
    x = q.QDense(4, kernel_quantizer=q.binary(alpha=1), use_bias=False, name="out")(x)
    model = tf.keras.Model(inp, x, name="binary_cnn")
    for layer in model.layers:
        if isinstance(layer, (q.QConv2D, q.QDense)):
            set_binary_kernel(layer, rng)
        if isinstance(layer, L.BatchNormalization):
            set_bn(layer, rng, 3.0)
    return model


def auto_po2(seed: int = 10):
    """kernel quantized_bits(alpha='auto_po2'): per-channel power-of-two scales."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((6, 6, 2), name="x")
    x = q.QActivation(qb(8, 2), name="input_q")(inp)
    x = q.QConv2D(8, (3, 3), padding="same", kernel_quantizer=q.quantized_bits(6, 0, alpha="auto_po2"),
                  bias_quantizer=qb(8, 1), name="conv_po2")(x)
    x = q.QActivation(q.quantized_relu(6, 2), name="relu1")(x)
    x = L.Flatten(name="flatten")(x)
    x = q.QDense(16, kernel_quantizer=q.quantized_bits(6, 0, alpha="auto_po2"), bias_quantizer=qb(8, 1),
                 name="fc_po2")(x)
    x = q.QActivation(q.quantized_relu(6, 3), name="relu2")(x)
    x = q.QDense(5, kernel_quantizer=q.quantized_bits(6, 0, alpha="auto_po2"), bias_quantizer=qb(8, 1),
                 name="out_po2")(x)
    model = tf.keras.Model(inp, x, name="auto_po2")
    for layer in model.layers:
        if isinstance(layer, (q.QDense, q.QConv2D)):
            set_linear(layer, rng, po2_channels=True, bias_bits=8, bias_integer=1)
    return model


def auto_po2_into_dense(seed: int = 16):
    """auto_po2 QConv2D (per-channel scales) -> Flatten -> QDense with no quantizer in between: the dense
    sees per-element power-of-two scales, aligned exactly by left shifts."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((4, 4, 2), name="x")
    x = q.QActivation(qb(6, 2), name="input_q")(inp)
    x = q.QConv2D(4, 2, strides=2, kernel_quantizer=q.quantized_bits(4, 0, alpha="auto_po2"), use_bias=False,
                  name="conv_po2")(x)
    x = L.Flatten(name="flatten")(x)
    x = q.QDense(3, kernel_quantizer=qb(4, 0), bias_quantizer=qb(4, 0), name="fc")(x)
    model = tf.keras.Model(inp, x, name="auto_po2_into_dense")
    set_linear(model.get_layer("conv_po2"), rng, bits=4, po2_channels=True)
    set_linear(model.get_layer("fc"), rng, bits=4)
    return model


def functional_add_concat(seed: int = 11):
    """Functional graph with Add (branches of different scales) and Concatenate."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((12,), name="x")
    x = q.QActivation(qb(8, 2), name="input_q")(inp)
    a = q.QDense(16, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fa")(x)
    a = q.QActivation(q.quantized_relu(6, 2), name="ra")(a)
    b = q.QDense(16, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fb")(x)
    b = q.QActivation(q.quantized_bits(8, 4, alpha=1), name="qb")(b)  # step 2^-3 vs 2^-4: Add aligns
    s = L.Add(name="add")([a, b])
    c = q.QDense(8, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc")(x)
    c = q.QActivation(q.quantized_relu(4, 1), name="rc")(c)
    y = L.Concatenate(name="concat")([s, c, a])
    y = q.QDense(8, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fd")(y)
    y = q.QActivation(q.quantized_relu(6, 2), name="rd")(y)
    r = L.Add(name="residual")([y, c, c])
    out = q.QDense(4, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="out")(r)
    model = tf.keras.Model(inp, out, name="add_concat")
    for layer in model.layers:
        if isinstance(layer, q.QDense):
            set_linear(layer, rng)
    return model


def plain_and_sequential_misc(seed: int = 14):
    """Sequential model: string quantizers, unsigned input quantized_bits(keep_negative=False), symmetric
    kernel, QDense(activation="quantized_relu(..)"), binary(use_01=True), ternary(alpha=0.5), final relu."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    model = tf.keras.Sequential([
        tf.keras.Input((10,), name="x"),
        q.QActivation("quantized_bits(8,2,keep_negative=False,alpha=1)", name="input_q"),
        q.QDense(12, kernel_quantizer="quantized_bits(6,0,1,alpha=1)", bias_quantizer="quantized_bits(6,0,alpha=1)",
                 activation="quantized_relu(5,2)", name="fc1"),
        q.QDense(8, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc2"),
        q.QActivation(q.binary(use_01=True), name="bin01"),
        q.QDense(8, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), name="fc3"),
        q.QActivation(q.ternary(alpha=0.5, threshold=0.25), name="tern"),
        q.QDense(6, kernel_quantizer=qb(6, 0), bias_quantizer=qb(6, 0), activation="relu", name="out"),
    ], name="sequential_misc")
    for layer in model.layers:
        if isinstance(layer, q.QDense):
            set_linear(layer, rng)
    return model


def plain_layers(seed: int = 15):
    """BatchNormalization directly on the quantized input, auto_po2 QConv2D without bias + BatchNormalization,
    plain Keras Conv2D/Dense (no quantizers) whose float weights lie on a power-of-two grid, ReLU layer."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((5, 5, 2), name="x")
    x = q.QActivation(qb(8, 2), name="input_q")(inp)
    x = L.BatchNormalization(name="bn_in")(x)
    x = q.QActivation(q.quantized_relu(4, 1), name="relu_in")(x)
    x = q.QConv2D(4, 3, kernel_quantizer=q.quantized_bits(6, 0, alpha="auto_po2"), use_bias=False, name="conv_po2")(x)
    x = L.BatchNormalization(name="bn_po2")(x)
    x = q.QActivation(q.quantized_bits(4, 1, alpha=1), name="qbits")(x)
    x = L.Conv2D(3, 2, name="plain_conv")(x)
    x = L.ReLU(name="relu_layer")(x)
    x = q.QActivation(q.quantized_relu(6, 3), name="relu_q")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(3, name="plain_dense")(x)
    model = tf.keras.Model(inp, x, name="plain_layers")
    set_linear(model.get_layer("conv_po2"), rng, po2_channels=True)
    for name in ("plain_conv", "plain_dense"):
        layer = model.get_layer(name)
        kshape = tuple(int(d) for d in layer.kernel.shape)
        layer.set_weights([grid_values(rng, kshape, -16, 15, 1 / 8, noise=False, specials=False),
                           grid_values(rng, kshape[-1:], -16, 15, 1 / 16, noise=False, specials=False)])
    for name in ("bn_in", "bn_po2"):
        set_bn(model.get_layer(name), rng, 2.0)
    return model


def auto_alpha(seed: int = 12, conv: bool = False):
    """One layer with kernel alpha='auto' (non-power-of-two per-channel scales) closed by a quantizer."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    if conv:
        inp = L.Input((6, 6, 3), name="x")
        x = q.QActivation(qb(8, 2), name="input_q")(inp)
        x = q.QConv2D(8, (3, 3), padding="same", kernel_quantizer=q.quantized_bits(6, 0, alpha="auto"),
                      bias_quantizer=qb(8, 2), name="conv_auto")(x)
    else:
        inp = L.Input((24,), name="x")
        x = q.QActivation(qb(8, 2), name="input_q")(inp)
        x = q.QDense(16, kernel_quantizer=q.quantized_bits(6, 0, alpha="auto"), bias_quantizer=qb(8, 2),
                     name="fc_auto")(x)
    x = q.QActivation(q.quantized_bits(8, 3, alpha=1), name="out_q")(x)
    model = tf.keras.Model(inp, x, name="auto_alpha_conv" if conv else "auto_alpha")
    for layer in model.layers:
        if isinstance(layer, (q.QDense, q.QConv2D)):
            set_linear(layer, rng, po2_channels=True, bias_bits=8, bias_integer=2)
            # make the per-channel scales non-powers of two
            w = layer.get_weights()
            w[0] = (w[0] * (1.0 + 0.37 * (np.arange(w[0].shape[-1]) % 5) / 5)).astype(np.float32)
            layer.set_weights(w)
    return model


def wide_accumulator(seed: int = 13):
    """16-bit raw input, 8-bit weights, fan-in 64: accumulators up to ~2^28 (wider than float32's 24 bits)."""
    tf, q = _tf(), _q()
    rng = _seed(seed)
    L = tf.keras.layers
    inp = L.Input((64,), name="x")
    x = q.QDense(16, kernel_quantizer=qb(8, 0), bias_quantizer=qb(8, 0), name="wide")(inp)
    x = q.QActivation(q.quantized_bits(16, 8, alpha=1), name="requant")(x)
    x = q.QDense(5, kernel_quantizer=qb(8, 0), bias_quantizer=qb(8, 0), name="out")(x)
    model = tf.keras.Model(inp, x, name="wide_acc")
    for layer in model.layers:
        if isinstance(layer, q.QDense):
            set_linear(layer, rng, bits=8, integer=0)
    return model


# ---- inputs -----------------------------------------------------------------------------

def real_inputs(shape, lo: int, hi: int, step: float, n: int = N_INPUTS, seed: int = 0) -> np.ndarray:
    """float32 real inputs for a model whose first layer quantizes to [lo, hi] * step.

    Rows 0-4: zeros, all min, all max, all below min, all above max; then
    every element independently: grid value, exact tie (k+1/2)*step, random
    real in the range widened by 3 steps, or an extreme (min, max, -0.0)."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    size = int(np.prod(shape))
    kind = rng.integers(0, 5, size=(n, size))
    k = rng.integers(lo - 2, hi + 3, size=(n, size)).astype(np.float64)
    vals = np.where(kind == 0, k, 0.0)
    vals = np.where(kind == 1, k + 0.5, vals)  # ties (including lo-1/2, hi+1/2)
    vals = np.where(kind == 2, rng.uniform(lo - 3, hi + 3, size=(n, size)), vals)
    vals = np.where(kind == 3, rng.choice([lo, hi, lo, hi, -0.0], size=(n, size)), vals)
    vals = np.where(kind == 4, rng.integers(lo, hi + 1, size=(n, size)), vals)
    vals[0], vals[1], vals[2], vals[3], vals[4] = 0.0, lo, hi, lo - 7.5, hi + 7.5
    # rows of only ties
    vals[5:200] = rng.integers(lo - 1, hi + 1, size=(195, size)) + 0.5
    x = (vals * step).astype(np.float32)
    x[0] = 0.0
    return x.reshape((n,) + shape)


def raw_inputs(shape, lo: int, hi: int, n: int = N_INPUTS, seed: int = 0) -> np.ndarray:
    """Raw integers over the whole type range: zeros, all min, all max, alternating extremes, random."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    size = int(np.prod(shape))
    raw = rng.integers(lo, hi + 1, size=(n, size))
    ext = rng.random((n, size)) < 0.15
    raw = np.where(ext, rng.choice([lo, hi, 0], size=(n, size)), raw)
    raw[0], raw[1], raw[2] = 0, lo, hi
    raw[3] = np.where(np.arange(size) % 2, lo, hi)
    raw[4] = np.where(np.arange(size) % 2, hi, lo)
    return raw.reshape((n,) + shape).astype(np.int64)


def binary_inputs(shape, n: int = N_INPUTS, seed: int = 0) -> np.ndarray:
    """Real inputs for a binary input quantizer: random reals, zeros, -0.0, tiny values."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    x = rng.normal(size=(n,) + shape).astype(np.float32)
    mask = rng.random(x.shape) < 0.1
    x[mask] = rng.choice(np.array([0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0], np.float32), size=int(mask.sum()))
    x[0] = 0.0
    x[1] = -0.0
    x[2] = -1.0
    x[3] = 1.0
    return x
