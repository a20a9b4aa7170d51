"""HAWQ-V3 dyadic quantizers and layers for QKeras (the custom objects of models trained with
qat.recipes.qkeras_recipes): ``dyadic_quantized_bits`` kernels whose per-channel scale is a dyadic
number b/2^c with b < 2^W, ``dyadic_bias`` on the accumulator grid, and ``QDenseDyadic`` /
``QConv2DDyadic`` that link the two.  A leaf module: the importer reads these classes to load
such models, and imports nothing else of qrtl's recipes.
"""
from __future__ import annotations

import math

import tensorflow as tf
from qkeras import QConv2D, QDense
from qkeras.quantizers import BaseQuantizer, quantized_bits

F32_EXACT_BITS = 24  # float32 significand
LARGE_RANGE = 65536.0  # max() of the free-scale quantizers: keeps QKeras' Clip constraint out of the way


# ---- quantizers -------------------------------------------------------------------------------

def _po2_f32(e: tf.Tensor) -> tf.Tensor:
    """2^e as float32 for int32 e in [-126, 127] (exact, from the exponent bits)."""
    return tf.bitcast(tf.bitwise.left_shift(e + 127, 23), tf.float32)


def dyadic_round(scale: tf.Tensor, mult_bits: int, rounding: str = "ceil") -> tf.Tensor:
    """Round positive float32 ``scale`` to b * 2^-c with a ``mult_bits``-bit mantissa b (exact ops).

    frexp(s) = m * 2^e, m in [0.5, 1): b = ceil (or round half even) of m * 2^W in
    [2^(W-1), 2^W]; result b * 2^(e-W).  Normal float32 scales only (2^-100 < s < 2^100).
    """
    bits_i = tf.bitcast(scale, tf.int32)
    e = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits_i, 23), 0xFF) - 127  # floor(log2 s)
    up = _po2_f32(mult_bits - 1 - e)
    mant = scale * up  # exact: in [2^(W-1), 2^W)
    mant = tf.math.ceil(mant) if rounding == "ceil" else tf.round(mant)
    return mant / up  # exact: power-of-two division


class dyadic_quantized_bits(quantized_bits):  # noqa: N801  (QKeras naming)
    """Symmetric narrow-range ``bits``-bit weights with per-output-channel dyadic scales.

    Scale per output channel (last axis): s = absmax / (2^(bits-1) - 1) as in QKeras'
    ``alpha='auto'``, then its mantissa rounded to ``mult_bits`` = W bits
    (:func:`dyadic_round`): s_w = b / 2^c, 0 < b < 2^W.  Output s_w * clip(round(x / s_w),
    -(2^(bits-1)-1), 2^(bits-1)-1), exact in float32 ((bits-1) + W <= 24 is required).
    All-zero channels get s_w = 1.  Straight-through gradient (d out / d x = 1).

    After a call, ``step`` holds s_w (shape (1, ..., 1, C)) and ``scale`` holds
    s_w * 2^(bits-1) (QKeras' convention for ``quantized_bits`` with a string alpha).
    """

    def __init__(self, bits: int = 4, mult_bits: int = 8, mantissa_rounding: str = "ceil", integer: int = 0,
                 symmetric: bool = True, keep_negative: bool = True, alpha: str = "auto",
                 use_stochastic_rounding: bool = False, scale_axis=None, qnoise_factor: float = 1.0,
                 var_name=None, use_ste: bool = True, use_variables: bool = False):
        if not (2 <= int(bits) <= 24):
            raise ValueError(f"dyadic_quantized_bits: bits must be 2..24, got {bits}")
        if not (1 <= int(mult_bits) <= F32_EXACT_BITS + 1 - int(bits)):
            raise ValueError(f"dyadic_quantized_bits: mult_bits must be 1..{F32_EXACT_BITS + 1 - int(bits)} for "
                             f"{bits}-bit weights (float32 holds (bits-1) + mult_bits <= 24 bits), got {mult_bits}")
        if mantissa_rounding not in ("ceil", "round"):
            raise ValueError("dyadic_quantized_bits: mantissa_rounding must be 'ceil' or 'round'")
        if int(integer) != 0 or not keep_negative or not symmetric or alpha != "auto" or use_stochastic_rounding \
                or float(qnoise_factor) != 1.0 or not use_ste or scale_axis not in (None, -1):
            raise ValueError("dyadic_quantized_bits: only symmetric, signed, integer=0, alpha='auto', "
                             "deterministic, straight-through weights on the last axis are supported")
        super().__init__(bits=int(bits), integer=0, symmetric=True, keep_negative=True, alpha="auto",
                         use_stochastic_rounding=False, scale_axis=None, qnoise_factor=1.0, var_name=var_name,
                         use_ste=True, use_variables=use_variables)
        self.mult_bits = int(mult_bits)
        self.mantissa_rounding = mantissa_rounding
        self.step = None

    @property
    def qmax(self) -> int:
        """Largest integer level, 2^(bits-1) - 1."""
        return (1 << (int(self.bits) - 1)) - 1

    def __call__(self, x):
        if not self.built:
            self.build(var_name=self.var_name, use_variables=self.use_variables)
        x = tf.cast(x, tf.float32)
        rank = len(x.shape)
        if rank < 2:
            raise ValueError("dyadic_quantized_bits quantizes kernels (rank >= 2, channels last)")
        xs = tf.stop_gradient(x)
        amax = tf.reduce_max(tf.abs(xs), axis=list(range(rank - 1)), keepdims=True)
        raw = amax / float(self.qmax)
        raw = tf.where(raw > 0, raw, tf.ones_like(raw))
        step = dyadic_round(raw, self.mult_bits, self.mantissa_rounding)
        z = tf.clip_by_value(tf.round(xs / step), -float(self.qmax), float(self.qmax))
        q = z * step  # exact: |z| * b < 2^24
        self.step = step
        self.scale = step * float(1 << (int(self.bits) - 1))
        return tf.stop_gradient(q) + (x - xs)

    def max(self) -> float:
        return LARGE_RANGE

    def min(self) -> float:
        return -LARGE_RANGE

    def __str__(self) -> str:
        extra = "" if self.mantissa_rounding == "ceil" else f",mantissa_rounding='{self.mantissa_rounding}'"
        return f"dyadic_quantized_bits({self.bits},mult_bits={self.mult_bits}{extra})"

    def get_config(self) -> dict:
        return {"bits": int(self.bits), "mult_bits": self.mult_bits, "mantissa_rounding": self.mantissa_rounding}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class dyadic_bias(BaseQuantizer):  # noqa: N801
    """Signed ``bits``-bit (default 32) bias in units of s_x * s_w (HAWQ-V3's bias scale).

    s_x = 2^``input_scale_log2`` is the layer's (power-of-two) input step, s_w the per-channel
    step of the layer's :class:`dyadic_quantized_bits` kernel, which the owning
    :class:`QDenseDyadic` / :class:`QConv2DDyadic` links in (the kernel quantizer runs first in
    ``call``).  Output unit * clip(round(x / unit), -L, L) with unit = s_x * s_w and
    L = 2^(bits-1) - 1 rounded down to a float32 value (2^31 - 128 for 32 bits).
    """

    def __init__(self, bits: int = 32, input_scale_log2: int = 0):
        super().__init__()
        if not 2 <= int(bits) <= 32:
            raise ValueError(f"dyadic_bias: bits must be 2..32, got {bits}")
        self.bits = int(bits)
        self.input_scale_log2 = int(input_scale_log2)
        self.keep_negative = True
        self.alpha = None
        self._kernel_step = None  # callable returning the kernel quantizer's step; set by the layer

    def link(self, kernel_quantizer: dyadic_quantized_bits) -> None:
        self._kernel_step = lambda: kernel_quantizer.step

    @property
    def limit(self) -> float:
        return float((1 << (self.bits - 1)) - (1 << max(0, self.bits - 25)))

    def unit(self, kernel_step) -> tf.Tensor:
        """s_x * s_w per channel (float32, exact)."""
        return tf.reshape(kernel_step, [-1]) * math.ldexp(1.0, self.input_scale_log2)

    def quantize(self, x, kernel_step) -> tf.Tensor:
        x = tf.cast(x, tf.float32)
        u = self.unit(kernel_step)
        xs = tf.stop_gradient(x)
        n = tf.clip_by_value(tf.round(xs / u), -self.limit, self.limit)
        return tf.stop_gradient(n * u) + (x - xs)

    def __call__(self, x):
        if self._kernel_step is None or self._kernel_step() is None:
            raise ValueError("dyadic_bias needs the kernel scale of its layer: use it in QDenseDyadic / "
                             "QConv2DDyadic (whose kernel quantizer runs first)")
        return self.quantize(x, self._kernel_step())

    def max(self) -> float:
        return LARGE_RANGE

    def min(self) -> float:
        return -LARGE_RANGE

    def __str__(self) -> str:
        return f"dyadic_bias({self.bits},input_scale_log2={self.input_scale_log2})"

    def get_config(self) -> dict:
        return {"bits": self.bits, "input_scale_log2": self.input_scale_log2}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _link_bias(layer) -> None:
    kq, bq = layer.kernel_quantizer_internal, layer.bias_quantizer_internal
    if isinstance(bq, dyadic_bias):
        if not isinstance(kq, dyadic_quantized_bits):
            raise ValueError(f"layer '{layer.name}': dyadic_bias needs a dyadic_quantized_bits kernel quantizer")
        bq.link(kq)


class QDenseDyadic(QDense):
    """QDense whose :class:`dyadic_bias` quantizer sees the kernel's per-channel scale."""

    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        _link_bias(self)


class QConv2DDyadic(QConv2D):
    """QConv2D whose :class:`dyadic_bias` quantizer sees the kernel's per-channel scale."""

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        _link_bias(self)


CUSTOM_OBJECTS_OWN = {"dyadic_quantized_bits": dyadic_quantized_bits, "dyadic_bias": dyadic_bias,
                      "QDenseDyadic": QDenseDyadic, "QConv2DDyadic": QConv2DDyadic}


def custom_objects() -> dict:
    """QKeras' custom objects plus this module's (for ``tf.keras.models.load_model``)."""
    from qkeras.utils import _add_supported_quantized_objects

    objs: dict = {}
    _add_supported_quantized_objects(objs)
    objs.update(CUSTOM_OBJECTS_OWN)
    return objs
