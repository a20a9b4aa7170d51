"""Brevitas QAT recipes: quantizer presets, model builders, BN folding, a short trainer.

Targets Brevitas 0.13.4 / torch 2.13 (CPU).  Two families (BRIEF "Dyadic integer-only
inference (HAWQ-V3)" and "Minifloats"):

Integer presets (``kind == "int"``)
    ``int8`` / ``int4``
        Weights narrow-range symmetric per-tensor, float scale = absmax/(2^(b-1)-1)
        (``Int8WeightPerTensorFloat`` with ``bit_width=b``); biases ``Int32Bias``
        (scale s_x*s_w, 32-bit signed); input ``Int8ActPerTensorFloat`` (signed) or
        ``Uint8ActPerTensorFloat`` (unsigned) and ReLU ``Uint8ActPerTensorFloat`` at b bits,
        learned float scales initialised from a 99.999-percentile of runtime statistics.
    ``po2_int8`` / ``po2_int4``
        Fixed point: the same with power-of-two scales everywhere
        (``Int8WeightPerTensorFixedPoint``, ``Int8ActPerTensorFixedPoint``,
        ``Uint8ActPerTensorFixedPoint``; scale = 2^ceil(log2 stat) / 2^(b-1) (signed) or / 2^b
        (unsigned)).
    ``dyadic_int8`` / ``dyadic_int4`` and :func:`dyadic` (bits, mult_bits=W)
        HAWQ-V3 style.  Activations (input ``QuantIdentity`` and every ``QuantReLU``) have
        power-of-two scales; weights are narrow-range symmetric *per output channel* with
        float scales whose mantissa is rounded to W bits: s_w = b / 2^c, 0 < b < 2^W
        (:class:`DyadicMantissaRestrictValue`, straight-through gradient).  Biases Int32Bias.
        The requantization multiplier of a layer, s_x * s_w[ch] / s_y, is then exactly
        b[ch] / 2^(c[ch] - k) with k = log2(s_x/s_y): one W-bit integer multiply and a shift.

        Exactness of the Brevitas (float32) forward: with acc the integer accumulator
        sum_i x_int[i] * w_int[ch, i] + bias_int[ch], PyTorch computes every partial sum as
        (partial integer) * b[ch] * 2^e with a power of two 2^e, which float32 holds exactly
        while |partial| * b[ch] < 2^24.  A sufficient, order-independent condition is
        (sum_i |x_int[i] * w_int[ch, i]| + |bias_int[ch]|) * b[ch] < 2^24 (e.g. 4-bit x,
        4-bit w, W = 8: 15*7*fan_in*255 < 2^24 holds up to fan_in ~ 626).  Beyond it the
        framework output may differ from the golden integer model by one float32 rounding.

Minifloat presets (``kind == "minifloat"``)
    ``fp8_e4m3``, ``fp8_e5m2``, ``fp6_e3m2``, ``fp6_e2m3``, ``fp4_e2m1`` (variant "plain":
    no inf/NaN codes, every code a number, saturating; E4M3 max 480) plus ``*_ocp``
    (E4M3 max 448 with a NaN code, E5M2 with inf/NaN; FP6/FP4 identical to plain) and
    ``*_fnuz`` (bias 2^(E-1); E4M3 max 240) variants, and :func:`minifloat` for any
    (E, M, bias).  Weights and activations are scaled minifloats with a per-tensor float
    scale (weights: absmax / max_format; activations: learned, initialised from the running
    max of |x| over the first collect_stats_steps batches).  Biases are NOT quantized (float32): Brevitas 0.13.4's Int*Bias
    quantizers need an ``IntQuantTensor`` input and raise "Input scale required" on a
    ``FloatQuantTensor``; an importer has to put the bias on the accumulator grid itself
    (a rounding Brevitas does not model).  Activation after ReLU stays a *signed* minifloat (the sign
    bit is wasted, as in Brevitas' own Fp8 act quantizers).

Rounding (what an importer must reproduce):
    * integer weights, activations, biases: ``RoundSte`` = ``torch.round`` = half to even,
      then clamp (narrow range for weights: [-(2^(b-1)-1), 2^(b-1)-1]).
    * minifloat: x/s, exponent e = max(floor(log2|x/s|), 1 - bias) - M, q = 2^e *
      round(x/s / 2^e) (half to even), then clamp to +-max (saturating).
    * power-of-two scales: ``CeilSte`` on log2 of the statistic (scales round *up*).
    * dyadic weight scale mantissa: ceil by default (``mantissa_rounding="ceil"``, so no
      weight saturates), or half-to-even ("round").

Statistics-based scales, a Brevitas subtlety: activation quantizers use
``ParameterFromRuntimeStatsScaling``; for the first ``collect_stats_steps`` training
steps the scale is the *batch* statistic / threshold **without** the power-of-two (or
any) restriction; only afterwards (and always in eval mode) is it restricted.  Brevitas'
default is 300 steps, longer than a short digits run (23 steps/epoch at batch 64), so the
presets here use ``collect_stats_steps = 30`` (configurable per preset factory).

Export (``brevitas.export.export_qonnx``, :func:`qonnx_export_ok`): every preset here
exports (integer presets -> ``Quant`` nodes, minifloat -> ``FloatQuant``).  Brevitas' own
plain/FNUZ float quantizers do not define ``max_available_float`` and their export fails
("can not resolve attribute 'max_available_float'"); the minifloat presets set it (equal
to the all-ones code, so the forward is unchanged).  qonnx 0.4.0 executes the integer
exports (bit-exact for po2/dyadic) once the default ONNX domain is listed first in
``opset_import`` (Brevitas lists the qonnx domain first and ``execute_onnx`` takes
``opset_import[0]`` as the ONNX opset -> "Gemm(1)" not implemented); it has no
``FloatQuant`` executor (import minifloat models from the module).

Other Brevitas 0.13.4 behaviour worth knowing:
    * ``return_quant_tensor=True`` on a QuantLinear/QuantConv with a float (minifloat)
      weight quantizer fails ("QuantLayer is not correctly configured"), so every
      QuantLinear/QuantConv here returns a plain tensor; QuantIdentity/QuantReLU return
      quant tensors (needed by Int32Bias for the input scale).
    * ``FloatQuantTensor.value`` is fp32(minifloat * scale), rounded whenever the scale's
      mantissa plus the format's exceed 24 bits, so ``value / scale`` is not exactly on
      the format grid; ``FloatQuantTensor.minifloat()`` recovers the grid values.
    * Scaled minifloats: FNUZ (bias + 1) is plain with a scale twice as large (identical
      quantized values when the scale comes from absmax / max); FP6/FP4 OCP == plain.
    * Weight scales are recomputed from the weights at every forward (``AbsMax`` stats,
      not learned); activation scales are learned parameters (in log2 domain for po2).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import brevitas.nn as qnn
from brevitas.core.function_wrapper import Identity
from brevitas.inject.enum import ScalingPerOutputType
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    Int32Bias,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.float_base import ScaledFloatActBase, ScaledFloatWeightBase
from brevitas.quant.float_quant_fnuz import FpFNUZActPerTensorFloat, FpFNUZWeightPerTensorFloat
from brevitas.quant.float_quant_ocp import FpOCPActPerTensorFloat, FpOCPWeightPerTensorFloat

__all__ = [
    "DyadicMantissaRestrictValue",
    "Preset",
    "PRESETS",
    "get_preset",
    "int_preset",
    "po2_preset",
    "dyadic",
    "minifloat",
    "minifloat_max",
    "minifloat_values",
    "dyadic_decompose",
    "mlp",
    "cnn",
    "fold_batchnorm",
    "train",
    "evaluate",
    "dyadic_recipe",
    "digits_data",
    "qonnx_export_ok",
    "DEFAULT_COLLECT_STATS_STEPS",
]

#: Steps of runtime statistics before an activation scale becomes a learned parameter.
DEFAULT_COLLECT_STATS_STEPS = 30


# --------------------------------------------------------------------------------------
# Dyadic weight scales
# --------------------------------------------------------------------------------------
class DyadicMantissaRestrictValue(nn.Module):
    """Restrict a positive float scale to b / 2^c with a W-bit integer b, 0 < b < 2^W.

    frexp(s) = m * 2^e, m in [0.5, 1); b' = ceil (or round-half-even) of m * 2^W lies in
    [2^(W-1), 2^W]; the result b' * 2^(e-W) is a dyadic number whose reduced mantissa has
    at most W bits (b' = 2^W is the power of two 2^e = 2^(W-1) / 2^(W-1-e)).  Gradient:
    straight through (d out / d s = 1).

    Used as Brevitas' ``restrict_scale_threshold_impl``, i.e. applied to the final scale
    (statistic / integer threshold), after every other restriction.  The
    ``restrict_init_*`` hooks are identities so it also fits where Brevitas expects a
    ``restrict_scaling_impl``.
    """

    def __init__(self, dyadic_mantissa_bit_width: int = 8, dyadic_mantissa_rounding: str = "ceil"):
        super().__init__()
        if not 1 <= int(dyadic_mantissa_bit_width) <= 24:
            raise ValueError("dyadic mantissa width must be 1..24 bits (float32 scales)")
        if dyadic_mantissa_rounding not in ("ceil", "round"):
            raise ValueError("dyadic_mantissa_rounding must be 'ceil' or 'round'")
        self.mantissa_bits = int(dyadic_mantissa_bit_width)
        self.rounding = dyadic_mantissa_rounding

    def restrict_init_float(self, x: float) -> float:
        return x

    def restrict_init_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def restrict_init_module(self) -> nn.Module:
        return Identity()

    def restrict_init_inplace_module(self) -> nn.Module:
        return Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            m, e = torch.frexp(x)
            w = torch.full_like(e, self.mantissa_bits)
            mant = torch.ldexp(m, w)
            mant = torch.ceil(mant) if self.rounding == "ceil" else torch.round(mant)
            q = torch.ldexp(mant, e - w)
        return x + (q - x).detach()

    def extra_repr(self) -> str:
        return f"mantissa_bits={self.mantissa_bits}, rounding={self.rounding}"


def dyadic_decompose(scale: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact (b, c) int64 arrays with scale == b / 2^c, b odd or 0 (reduced form)."""
    s = np.asarray(torch.as_tensor(scale).detach().double().cpu().numpy(), dtype=np.float64)
    m, e = np.frexp(s)
    b = np.ldexp(m, 53).astype(np.int64)  # exact: float64 mantissa
    c = 53 - e.astype(np.int64)
    while True:
        even = (b % 2 == 0) & (b != 0)
        if not even.any():
            break
        b = np.where(even, b // 2, b)
        c = np.where(even, c - 1, c)
    return b, c


# --------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """Brevitas quantizer classes for one recipe.

    ``input_signed`` / ``input_unsigned``: quantizer for the input ``QuantIdentity``
    (real-valued network input); ``weight``, ``bias``: for ``QuantLinear`` /
    ``QuantConv2d``; ``act``: for ``QuantReLU``; ``output``: signed quantizer for an
    optional output ``QuantIdentity``.  ``bits`` = activation/weight width;
    ``mult_bits`` = dyadic multiplier width (dyadic presets only).
    """

    name: str
    kind: str  # "int" | "minifloat"
    bits: int
    input_signed: type
    input_unsigned: type
    weight: type
    bias: type | None
    act: type
    output: type
    scales: str  # "float" | "po2" | "dyadic" | "minifloat"
    mult_bits: int | None = None
    exponent_bits: int | None = None
    mantissa_bits: int | None = None
    exponent_bias: int | None = None
    variant: str | None = None  # minifloat: "plain" | "ocp" | "fnuz"
    notes: str = ""

    def describe(self) -> dict[str, Any]:
        """Plain-data summary (class names and key attributes) for reports/importers."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, type):
                out[f.name] = {"class": v.__name__,
                               "bases": [b.__module__ + "." + b.__name__ for b in v.__mro__[1:3]],
                               **_quant_attrs(v)}
            else:
                out[f.name] = v
        return out


_ATTRS = ("bit_width", "signed", "narrow_range", "scaling_per_output_type", "restrict_scaling_type",
          "scaling_impl_type", "scaling_stats_op", "collect_stats_steps", "exponent_bit_width",
          "mantissa_bit_width", "exponent_bias", "dyadic_mantissa_bit_width",
          "dyadic_mantissa_rounding")


def _quant_attrs(cls: type) -> dict[str, Any]:
    out = {}
    for a in _ATTRS:
        try:
            v = getattr(cls, a)
        except Exception:  # unresolved injector attribute
            continue
        if isinstance(v, (int, float, str, bool)) or hasattr(v, "name"):
            out[a] = getattr(v, "name", v) if not isinstance(v, (int, float, str, bool)) else v
    return out


def _derive(base: type, name: str, **attrs: Any) -> type:
    """Subclass a Brevitas injector quantizer, overriding attributes."""
    return type(name, (base,), dict(attrs, __module__=__name__))


# base quantizers of the integer presets: scales -> (signed act, unsigned act, weight, class-name suffix)
_INT_BASES = {
    "float": (Int8ActPerTensorFloat, Uint8ActPerTensorFloat, Int8WeightPerTensorFloat, "PerTensorFloat"),
    "po2": (Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint,
            "PerTensorFixedPoint"),
}


def _int_family(bits: int, scales: str, collect_stats_steps: int) -> Preset:
    s_act, u_act, weight, suffix = _INT_BASES[scales]
    cs = dict(collect_stats_steps=collect_stats_steps)
    return Preset(
        name=f"int{bits}" if scales == "float" else f"po2_int{bits}", kind="int", bits=bits, scales=scales,
        input_signed=_derive(s_act, f"Int{bits}Act{suffix}", bit_width=bits, **cs),
        input_unsigned=_derive(u_act, f"Uint{bits}Act{suffix}", bit_width=bits, **cs),
        weight=_derive(weight, f"Int{bits}Weight{suffix}", bit_width=bits),
        bias=Int32Bias,
        act=_derive(u_act, f"Uint{bits}Relu{suffix}", bit_width=bits, **cs),
        output=_derive(s_act, f"Int{bits}Out{suffix}", bit_width=bits, **cs),
    )


def int_preset(bits: int = 8, collect_stats_steps: int = DEFAULT_COLLECT_STATS_STEPS) -> Preset:
    """Float-scale integer preset: per-tensor float scales, b-bit weights/activations."""
    return _int_family(bits, "float", collect_stats_steps)


def po2_preset(bits: int = 8, collect_stats_steps: int = DEFAULT_COLLECT_STATS_STEPS) -> Preset:
    """Fixed-point preset: power-of-two scales for inputs, weights, activations."""
    return _int_family(bits, "po2", collect_stats_steps)


def dyadic(bits: int = 4, mult_bits: int = 8, mantissa_rounding: str = "ceil",
           collect_stats_steps: int = DEFAULT_COLLECT_STATS_STEPS) -> Preset:
    """HAWQ-V3 dyadic preset: po2 activation scales, per-channel W-bit-dyadic weight scales.

    bits: activation and weight width (weights narrow range, [-(2^(bits-1)-1), 2^(bits-1)-1]).
    mult_bits: W, width of the dyadic weight-scale mantissa b (0 < b < 2^W), which is also
    the requantization multiplier width.
    """
    cs = dict(collect_stats_steps=collect_stats_steps)
    po2 = po2_preset(bits, collect_stats_steps)
    weight = _derive(
        Int8WeightPerChannelFloat, f"Int{bits}WeightPerChannelDyadic{mult_bits}",
        bit_width=bits,
        restrict_scale_threshold_impl=DyadicMantissaRestrictValue,
        dyadic_mantissa_bit_width=mult_bits,
        dyadic_mantissa_rounding=mantissa_rounding)
    return dataclasses.replace(
        po2, name=f"dyadic_int{bits}" + ("" if mult_bits == 8 else f"_m{mult_bits}"),
        scales="dyadic", weight=weight, mult_bits=mult_bits,
        act=_derive(Uint8ActPerTensorFixedPoint, f"Uint{bits}ReluPerTensorFixedPoint", bit_width=bits, **cs),
        notes="requant multiplier s_x*s_w/s_y = b/2^c exactly; float32 forward exact while "
              "(sum|x_int*w_int| + |bias_int|) * b < 2^24")


_MF_BASES = {
    "plain": (ScaledFloatWeightBase, ScaledFloatActBase),
    "ocp": (FpOCPWeightPerTensorFloat, FpOCPActPerTensorFloat),
    "fnuz": (FpFNUZWeightPerTensorFloat, FpFNUZActPerTensorFloat),
}


def minifloat_max(exp_bits: int, man_bits: int, bias: int | None = None, variant: str = "plain") -> float:
    """Largest finite value of the format (as Brevitas computes it)."""
    from brevitas.utils.float_quant_utils import get_max_available_float
    if bias is None:
        bias = 2 ** (exp_bits - 1) if variant == "fnuz" else 2 ** (exp_bits - 1) - 1
    nan = inf = None
    if variant == "ocp" and exp_bits + man_bits == 7:
        if (exp_bits, man_bits) == (4, 3):
            nan = ("111",)
        elif (exp_bits, man_bits) == (5, 2):
            nan, inf = ("01", "11", "10"), ("00",)
    return float(get_max_available_float(exp_bits, man_bits, bias, nan, inf, True))


def minifloat_values(exp_bits: int, man_bits: int, bias: int | None = None,
                     variant: str = "plain") -> np.ndarray:
    """Sorted array (float64) of every finite value of the format, both signs, up to its max.

    Exponent field 0 is subnormal: 2^(1-bias) * m/2^M; field e > 0: 2^(e-bias) * (1 + m/2^M).
    Codes above the max (OCP NaN/inf) are left out.
    """
    if bias is None:
        bias = 2 ** (exp_bits - 1) if variant == "fnuz" else 2 ** (exp_bits - 1) - 1
    top = minifloat_max(exp_bits, man_bits, bias, variant)
    vals = set()
    for e in range(2 ** exp_bits):
        for m in range(2 ** man_bits):
            v = math.ldexp(m / 2 ** man_bits, 1 - bias) if e == 0 else math.ldexp(1 + m / 2 ** man_bits, e - bias)
            if v <= top:
                vals.update((v, -v))
    return np.array(sorted(vals), dtype=np.float64)


def minifloat(exp_bits: int, man_bits: int, bias: int | None = None, variant: str = "plain",
              collect_stats_steps: int = DEFAULT_COLLECT_STATS_STEPS) -> Preset:
    """Minifloat preset: 1 sign + E exponent + M mantissa bits, per-tensor float scales.

    bias: exponent bias (default 2^(E-1)-1, FNUZ 2^(E-1)).  variant: "plain" (no special
    codes), "ocp" (OCP FP8 NaN/inf codes for E4M3/E5M2), "fnuz" (bias 2^(E-1)).
    """
    if variant not in _MF_BASES:
        raise ValueError(f"variant must be one of {sorted(_MF_BASES)}")
    if exp_bits < 1 or man_bits < 0:
        raise ValueError("need exp_bits >= 1, man_bits >= 0")
    bits = 1 + exp_bits + man_bits
    wbase, abase = _MF_BASES[variant]
    attrs: dict[str, Any] = dict(bit_width=bits, exponent_bit_width=exp_bits,
                                 mantissa_bit_width=man_bits, saturating=True)
    if bias is not None:
        attrs["exponent_bias"] = bias
    eb = bias if bias is not None else (2 ** (exp_bits - 1) if variant == "fnuz" else 2 ** (exp_bits - 1) - 1)
    if variant != "ocp":
        # Brevitas only defines max_available_float for OCP; the QONNX export handler reads
        # it from every float quantizer ("can not resolve attribute 'max_available_float'"
        # otherwise).  Equal to the all-ones code, so the forward is unchanged.
        attrs["max_available_float"] = minifloat_max(exp_bits, man_bits, eb, variant)
    tag = f"Fp{bits}e{exp_bits}m{man_bits}{'' if bias is None else f'b{bias}'}{variant.upper()}"
    scale_tensor = dict(scaling_per_output_type=ScalingPerOutputType.TENSOR)
    weight = _derive(wbase, tag + "Weight", **scale_tensor, **attrs)
    act = _derive(abase, tag + "Act", collect_stats_steps=collect_stats_steps, **scale_tensor, **attrs)
    suffix = "" if variant == "plain" else f"_{variant}"
    return Preset(
        name=f"fp{bits}_e{exp_bits}m{man_bits}{suffix}" + ("" if bias is None else f"_b{bias}"),
        kind="minifloat", bits=bits, scales="minifloat",
        input_signed=act, input_unsigned=act, weight=weight, bias=None, act=act, output=act,
        exponent_bits=exp_bits, mantissa_bits=man_bits, exponent_bias=eb, variant=variant,
        notes=f"max {minifloat_max(exp_bits, man_bits, eb, variant)} (format units)")


def _build_presets() -> dict[str, Preset]:
    p: dict[str, Preset] = {
        "int8": int_preset(8), "int4": int_preset(4),
        "po2_int8": po2_preset(8), "po2_int4": po2_preset(4),
        "dyadic_int8": dyadic(8, 8), "dyadic_int4": dyadic(4, 8),
    }
    for e, m in ((4, 3), (5, 2), (3, 2), (2, 3), (2, 1)):
        for v in ("plain", "ocp", "fnuz"):
            pr = minifloat(e, m, variant=v)
            p[pr.name] = pr
    return p


PRESETS: dict[str, Preset] = _build_presets()


def get_preset(name: str) -> Preset:
    """Preset by name (see ``PRESETS``); also "dyadic_int<b>_m<W>" for any widths."""
    if name in PRESETS:
        return PRESETS[name]
    if name.startswith("dyadic_int") and "_m" in name:
        b, w = name[len("dyadic_int"):].split("_m")
        return dyadic(int(b), int(w))
    raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")


def _as_preset(preset: Preset | str) -> Preset:
    return get_preset(preset) if isinstance(preset, str) else preset


# --------------------------------------------------------------------------------------
# Model builders
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _seeded(seed: int | None):
    """Fix torch's RNG inside the block (weight initialisation) without touching the global state."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def _with_input_quant(p: Preset, signed: bool) -> "OrderedDict[str, nn.Module]":
    """A new layer dict holding the input quantizer (real inputs in, quantized as the preset says)."""
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    layers["input_quant"] = qnn.QuantIdentity(act_quant=p.input_signed if signed else p.input_unsigned,
                                              return_quant_tensor=True)
    return layers


def mlp(in_features: int, hidden: Sequence[int], out_features: int, preset: Preset | str,
        batchnorm: bool = False, input_signed: bool = True, output_quant: bool = False,
        seed: int | None = None) -> nn.Sequential:
    """QuantIdentity -> [QuantLinear (-> BatchNorm1d) -> QuantReLU] * len(hidden) -> QuantLinear.

    The last layer returns float logits = (acc_int) * s_x * s_w (+ bias folded into acc as
    int32): no output re-quantization, as hls4ml (last Dense keeps its accumulator type)
    and FINN (trailing scale Mul, then TopK) users expect; argmax on logits is argmax on
    acc * s_w[ch], i.e. for per-channel (dyadic) weight scales hardware must rescale before
    comparing.  ``output_quant=True`` appends a signed ``QuantIdentity`` (preset.output) so
    the network ends in one common (po2 for po2/dyadic) scale.

    Children are named input_quant, fc0, bn0, act0, ..., fc_out (, output_quant).
    ``seed`` fixes the weight initialisation without touching the global RNG.
    """
    p = _as_preset(preset)
    with _seeded(seed):
        layers = _with_input_quant(p, input_signed)
        n = in_features
        for i, h in enumerate(hidden):
            layers[f"fc{i}"] = qnn.QuantLinear(n, h, bias=True, weight_quant=p.weight,
                                               bias_quant=p.bias, return_quant_tensor=False)
            if batchnorm:
                layers[f"bn{i}"] = nn.BatchNorm1d(h)
            layers[f"act{i}"] = qnn.QuantReLU(act_quant=p.act, return_quant_tensor=True)
            n = h
        layers["fc_out"] = qnn.QuantLinear(n, out_features, bias=True, weight_quant=p.weight,
                                           bias_quant=p.bias, return_quant_tensor=False)
        if output_quant:
            layers["output_quant"] = qnn.QuantIdentity(act_quant=p.output, return_quant_tensor=False)
    return nn.Sequential(layers)


def cnn(in_shape: tuple[int, int, int], channels: Sequence[int], out_features: int,
        preset: Preset | str, kernel_size: int = 3, batchnorm: bool = False,
        input_signed: bool = True, seed: int | None = None) -> nn.Sequential:
    """Tiny CNN: QuantIdentity -> [QuantConv2d(k, pad k//2) (-> BN2d) -> QuantReLU -> MaxPool2d(2)]*
    -> Flatten -> QuantLinear (float logits).  in_shape = (C, H, W)."""
    p = _as_preset(preset)
    c, h, w = in_shape
    with _seeded(seed):
        layers = _with_input_quant(p, input_signed)
        for i, ch in enumerate(channels):
            layers[f"conv{i}"] = qnn.QuantConv2d(c, ch, kernel_size, padding=kernel_size // 2, bias=True,
                                                 weight_quant=p.weight, bias_quant=p.bias,
                                                 return_quant_tensor=False)
            if batchnorm:
                layers[f"bn{i}"] = nn.BatchNorm2d(ch)
            layers[f"act{i}"] = qnn.QuantReLU(act_quant=p.act, return_quant_tensor=True)
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            c, h, w = ch, h // 2, w // 2
        layers["flatten"] = nn.Flatten()
        layers["fc_out"] = qnn.QuantLinear(c * h * w, out_features, bias=True, weight_quant=p.weight,
                                           bias_quant=p.bias, return_quant_tensor=False)
    return nn.Sequential(layers)


# --------------------------------------------------------------------------------------
# BatchNorm folding
# --------------------------------------------------------------------------------------
_FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)  # QuantLinear / QuantConv* subclass these


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a Linear/Conv into it (in place).

    W' = W * g / sqrt(var + eps) (per output channel), b' = (b - mean) * g / sqrt(var + eps)
    + beta, with running statistics (eval-mode BN).  Computed in float64, stored in the
    layer's dtype.  The BN is replaced by ``nn.Identity`` (names are kept).  Quantizer
    scales derived from weight statistics follow automatically; learned activation scales
    are left as they are (fine-tune afterwards to recalibrate).  Returns ``model``.
    """
    for parent in [model, *model.modules()]:
        names = list(parent._modules.keys())
        for prev_name, name in zip(names, names[1:]):
            prev, bn = parent._modules[prev_name], parent._modules[name]
            if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not isinstance(prev, _FOLDABLE):
                continue
            with torch.no_grad():
                w = prev.weight.double()
                g = (bn.weight.double() if bn.affine else torch.ones_like(bn.running_mean, dtype=torch.float64))
                beta = (bn.bias.double() if bn.affine else torch.zeros_like(g))
                k = g / torch.sqrt(bn.running_var.double() + bn.eps)
                shape = [-1] + [1] * (w.dim() - 1)
                if isinstance(prev, nn.Conv2d) and prev.groups != 1 and prev.groups != prev.in_channels:
                    raise NotImplementedError("grouped conv folding")
                if prev.bias is None:
                    raise ValueError(f"{prev_name}: layer without bias cannot absorb BatchNorm "
                                     "(build it with bias=True)")
                b = prev.bias.double()
                prev.weight.copy_((w * k.view(shape)).to(prev.weight.dtype))
                prev.bias.copy_(((b - bn.running_mean.double()) * k + beta).to(prev.bias.dtype))
            parent._modules[name] = nn.Identity()
    return model


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def _as_tensor(x: Any, dtype: torch.dtype) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


def train(model: nn.Module, X: Any, y: Any, epochs: int = 3, lr: float = 1e-2, seed: int = 0,
          batch_size: int = 64, weight_decay: float = 0.0,
          X_val: Any = None, y_val: Any = None) -> list[dict[str, float]]:
    """Cross-entropy + Adam, shuffled mini-batches from a seeded generator, one CPU thread.

    Deterministic: same model init + same arguments -> identical state_dict.  Returns the
    history: per epoch {"epoch", "loss" (mean train loss), "train_acc"[, "val_acc"]}.
    """
    Xt, yt = _as_tensor(X, torch.float32), _as_tensor(y, torch.long)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return _fit(model, Xt, yt, epochs, seed, batch_size,
                lambda: (torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay), None),
                skip_single=has_bn, X_val=X_val, y_val=y_val)


def _fit(model: nn.Module, Xt: torch.Tensor, yt: torch.Tensor, epochs: int, seed: int, batch_size: int,
         make_opt: Callable[[], tuple[Any, Any]], skip_single: bool, X_val: Any = None, y_val: Any = None,
         extra_loss: Callable[[], torch.Tensor] | None = None, after_step: Callable[[], None] | None = None,
         epoch_info: Callable[[], dict] | None = None) -> list[dict[str, float]]:
    """The training loop of :func:`train` and :func:`train_bnn`: cross-entropy on shuffled mini-batches
    from a generator seeded with ``seed``, one CPU thread, the global RNG forked and seeded.
    ``make_opt()`` -> (optimizer, scheduler or None); ``skip_single``: skip a last batch of one (BN);
    ``extra_loss()`` is added to each batch's loss; ``after_step()`` runs under no_grad after each
    step; ``epoch_info()`` adds entries to each epoch's record."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            opt, sched = make_opt()
            loss_fn = nn.CrossEntropyLoss()
            history: list[dict[str, float]] = []
            n = len(Xt)
            for ep in range(epochs):
                model.train()
                perm = torch.randperm(n, generator=gen)
                tot, correct = 0.0, 0
                for i in range(0, n, batch_size):
                    idx = perm[i:i + batch_size]
                    if len(idx) < 2 and skip_single:
                        continue  # BN cannot train on a batch of one
                    out = _logits(model(Xt[idx]))
                    loss = loss_fn(out, yt[idx])
                    if extra_loss is not None:
                        loss = loss + extra_loss()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    if after_step is not None:
                        with torch.no_grad():
                            after_step()
                    tot += float(loss.detach()) * len(idx)
                    correct += int((out.detach().argmax(1) == yt[idx]).sum())
                rec = {"epoch": ep + 1, "loss": tot / n, "train_acc": correct / n}
                if epoch_info is not None:
                    rec.update(epoch_info())
                if X_val is not None:
                    rec["val_acc"] = evaluate(model, X_val, y_val)
                history.append(rec)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return history


def _logits(out: Any) -> torch.Tensor:
    return out.value if hasattr(out, "value") and not isinstance(out, torch.Tensor) else out


def evaluate(model: nn.Module, X: Any, y: Any, batch_size: int = 1024) -> float:
    """Top-1 accuracy in eval mode (quantized forward); restores the training flag."""
    was = model.training
    model.eval()
    Xt, yt = _as_tensor(X, torch.float32), _as_tensor(y, torch.long)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(Xt), batch_size):
            correct += int((_logits(model(Xt[i:i + batch_size])).argmax(1) == yt[i:i + batch_size]).sum())
    model.train(was)
    return correct / len(Xt)


def dyadic_recipe(X: Any, y: Any, hidden: Sequence[int] = (32,), bits: int = 4, mult_bits: int = 8,
                  epochs: int = 3, finetune_epochs: int = 2, lr: float = 1e-2, finetune_lr: float = 2e-3,
                  seed: int = 0, batch_size: int = 64, input_signed: bool = False,
                  X_val: Any = None, y_val: Any = None) -> tuple[nn.Sequential, dict[str, Any]]:
    """HAWQ-V3 flow: QAT with BatchNorm -> fold BN into weights/biases -> fine-tune.

    Returns (model without BN, {"preset", "train": history, "finetune": history}).
    """
    Xt = _as_tensor(X, torch.float32)
    n_out = int(_as_tensor(y, torch.long).max()) + 1
    p = dyadic(bits, mult_bits)
    model = mlp(Xt.shape[1], list(hidden), n_out, p, batchnorm=True, input_signed=input_signed, seed=seed)
    h1 = train(model, Xt, y, epochs, lr, seed, batch_size, X_val=X_val, y_val=y_val)
    fold_batchnorm(model)
    h2 = train(model, Xt, y, finetune_epochs, finetune_lr, seed + 1, batch_size, X_val=X_val, y_val=y_val)
    return model, {"preset": p.name, "train": h1, "finetune": h2}


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------
def digits_data(test_size: float = 0.2, seed: int = 0, input_bits: int = 8
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn digits (1797 x 64, pixels 0..16) -> (X_train, X_test, y_train, y_test).

    X = pixel / 16 clipped to 1 - 2^-input_bits: float32 in [0, 1), on the 2^-input_bits
    grid for input_bits >= 4, so an unsigned input quantizer with po2 scale 2^-input_bits
    represents every input exactly (pixel 16 -> (2^input_bits - 1) / 2^input_bits).
    Stratified split with a fixed seed; y int64.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    X = np.minimum(d.data / 16.0, 1.0 - 2.0 ** -input_bits).astype(np.float32)
    y = d.target.astype(np.int64)
    return tuple(train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# Export check
# --------------------------------------------------------------------------------------
def qonnx_export_ok(model: nn.Module, example: torch.Tensor, path: str) -> tuple[bool, str]:
    """Try ``brevitas.export.export_qonnx``; (True, "") or (False, first error line)."""
    from brevitas.export import export_qonnx
    was = model.training
    model.eval()
    try:
        export_qonnx(model, input_t=example, export_path=path)
        return True, ""
    except Exception as exc:  # record, don't raise: minifloat acts fail in 0.13.4
        msg = str(exc).strip().splitlines()
        return False, f"{type(exc).__name__}: {msg[0] if msg else ''}"
    finally:
        model.train(was)


# ---- binary networks (FINN-style w1a1) and the MST regulariser --------------------------------

def _bnn_quant():
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    # weight scale 1.0: a float32 framework then sums +-1 exactly (Brevitas' default 0.1 does not)
    return SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst.let(scaling_const=1.0)


class BinaryMLP(nn.Module):
    """TFC-w1a1 in spirit: sign(input) -> [binary Linear -> BatchNorm -> sign] x len(hidden) -> binary
    Linear (integer logits).  Imports as bdense + fused thresholds."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (256, 256), out_features: int = 10):
        super().__init__()
        act, wq = _bnn_quant()
        layers: list[nn.Module] = [qnn.QuantIdentity(act_quant=act, return_quant_tensor=True)]
        n = in_features
        for h in hidden:
            layers += [qnn.QuantLinear(n, h, weight_quant=wq, bias=False), nn.BatchNorm1d(h),
                       qnn.QuantIdentity(act_quant=act, return_quant_tensor=True)]
            n = h
        layers.append(qnn.QuantLinear(n, out_features, weight_quant=wq, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class BinaryCNN(nn.Module):
    """CNV-w1a1 in spirit (small): sign(input) -> [binary 3x3 valid conv -> BatchNorm -> sign] x
    len(channels) -> flatten -> binary Linear (integer logits)."""

    def __init__(self, in_shape: tuple[int, int, int], channels: Sequence[int] = (16, 32), out_features: int = 10):
        super().__init__()
        act, wq = _bnn_quant()
        c, h, w = in_shape
        self.inp = qnn.QuantIdentity(act_quant=act, return_quant_tensor=True)
        feats: list[nn.Module] = []
        for co in channels:
            feats += [qnn.QuantConv2d(c, co, 3, weight_quant=wq, bias=False), nn.BatchNorm2d(co),
                      qnn.QuantIdentity(act_quant=act, return_quant_tensor=True)]
            c, h, w = co, h - 2, w - 2
        self.features = nn.Sequential(*feats)
        self.fc = qnn.QuantLinear(c * h * w, out_features, weight_quant=wq, bias=False)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(self.inp(x)), 1))


def binary_layers(model: nn.Module) -> list[nn.Module]:
    """The binary linear/conv layers whose output channels a spanning tree can share (all but the last)."""
    layers = [m for m in model.modules() if isinstance(m, (qnn.QuantLinear, qnn.QuantConv2d))]
    return layers[:-1]


class MSTRegularizer:
    """A differentiable surrogate of the total MST distance of a binary network's layers.

    Every ``every`` steps the depth-bounded spanning tree of each layer's output channels is
    rebuilt from the current signs of the latent (real) weights (hls.engine.spanning_tree: Hamming
    distance, with negation); in between the loss is, over the tree's edges (p, c),
    sum_i (1 - f * tanh(b*w_p,i) * tanh(b*w_c,i)) / 2, f = +1 (-1 for a negated edge): the number of
    sign disagreements when the weights are far from 0, smooth near 0.  ``b`` scales by the layer's
    mean |w|; the sum is divided by the layer's weight count, so ``lam`` is per-weight."""

    def __init__(self, layers: Sequence[nn.Module], lam: float, every: int = 50, max_depth: int | None = None,
                 sharpness: float = 3.0):
        self.layers, self.lam, self.every = list(layers), float(lam), int(every)
        self.max_depth, self.sharpness = max_depth, sharpness
        self.step = 0
        self.edges: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    @staticmethod
    def columns(layer: nn.Module) -> torch.Tensor:
        w = layer.weight
        return w.reshape(w.shape[0], -1)  # (out channels, fan-in)

    def rebuild(self) -> None:
        from hls.engine.spanning_tree import hamming, spanning_tree

        self.edges = []
        for layer in self.layers:
            w = self.columns(layer).detach()
            bits = (w >= 0).cpu().numpy().T.astype(np.int64)  # (N, C)
            dist, flip = hamming(bits)
            n = bits.shape[0]
            tree = spanning_tree(dist, np.full(bits.shape[1], n), None if self.max_depth is None else self.max_depth + 1,
                                 flip)
            kids = [v for v in range(bits.shape[1]) if tree.parent[v] >= 0]
            par = [int(tree.parent[v]) for v in kids]
            sgn = [-1.0 if tree.flip[v] else 1.0 for v in kids]
            self.edges.append((torch.tensor(kids), torch.tensor(par), torch.tensor(sgn)))

    def distance(self) -> list[int]:
        """Total MST distance (edges only) of each layer's current sign pattern."""
        self.rebuild()
        out = []
        for layer, (kids, par, sgn) in zip(self.layers, self.edges):
            b = self.columns(layer).detach() >= 0
            same = (b[kids] == b[par]).sum(1)
            out.append(int(torch.where(sgn > 0, b.shape[1] - same, same).sum()))
        return out

    def __call__(self) -> torch.Tensor:
        if self.step % self.every == 0 or not self.edges:
            self.rebuild()
        self.step += 1
        total = torch.zeros(())
        for layer, (kids, par, sgn) in zip(self.layers, self.edges):
            if len(kids) == 0:
                continue
            w = self.columns(layer)
            t = torch.tanh(self.sharpness * w / (w.detach().abs().mean() + 1e-8))
            agree = (t[kids] * t[par]).sum(1) * sgn
            total = total + (w.shape[1] * len(kids) - agree.sum()) / 2 / w.numel()
        return self.lam * total


def train_bnn(model: nn.Module, X: Any, y: Any, epochs: int = 10, lr: float = 5e-3, seed: int = 0,
              batch_size: int = 64, lam: float = 0.0, tree_every: int = 50, mst_depth: int | None = None,
              X_val: Any = None, y_val: Any = None) -> list[dict[str, float]]:
    """Cross-entropy + ``lam`` * MST surrogate (:class:`MSTRegularizer`, tree rebuilt every
    ``tree_every`` steps), Adam with a cosine learning rate, latent weights clipped to [-1, 1]
    (BinaryConnect).  Deterministic like :func:`train`.  History per epoch: loss, train_acc,
    mst_distance (per layer)[, val_acc]."""
    Xt, yt = _as_tensor(X, torch.float32), _as_tensor(y, torch.long)
    reg = MSTRegularizer(binary_layers(model), lam, tree_every, mst_depth)
    steps = epochs * ((len(Xt) + batch_size - 1) // batch_size)

    def make_opt():
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))

    clipped = reg.layers + [m for m in model.modules() if isinstance(m, (qnn.QuantLinear, qnn.QuantConv2d))]

    def clip_latent() -> None:  # BinaryConnect: latent weights stay in [-1, 1]
        for layer in clipped:
            layer.weight.clamp_(-1.0, 1.0)

    return _fit(model, Xt, yt, epochs, seed, batch_size, make_opt, skip_single=True, X_val=X_val, y_val=y_val,
                extra_loss=reg if lam else None, after_step=clip_latent,
                epoch_info=lambda: {"mst_distance": reg.distance()})
