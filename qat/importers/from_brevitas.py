"""Brevitas ``nn.Module`` -> integer network, and golden-vs-Brevitas agreement.

One path: the module is exported with ``brevitas.export.export_qonnx`` (on a
deep copy, in eval mode) and the QONNX graph goes through
:mod:`qat.importers.from_qonnx`.  Brevitas 0.13.4's QONNX export reads
``max_available_float`` from minifloat quantizers, which only its OCP and
FNUZ quantizers define; for plain (and custom) minifloat quantizers the copy
gets that value from the format itself (the largest finite value, all
exponent and mantissa bits set), which is what those quantizers clamp to.
"""
from __future__ import annotations

import copy
import io
import math
import warnings
from contextlib import redirect_stdout, redirect_stderr
from typing import Any

import numpy as np

from qat.ir.network import Network, NetworkError
from qat.importers.from_qonnx import import_qonnx
from qat.importers.scales import DEFAULT_MULT_BITS, minifloat_from_real


MAX_LISTED = 1000  # differing inputs listed by agreement()


class BrevitasImportError(NetworkError):
    """A Brevitas module qrtl cannot export or convert."""


def _plain_max(exp_bits: int, man_bits: int, bias: int) -> float:
    """Largest finite value of a minifloat with no inf/NaN codes (all bits set)."""
    return (2.0 - 2.0 ** -man_bits) * 2.0 ** ((1 << exp_bits) - 1 - bias)


def _give_max_float(model) -> None:
    """Let plain minifloat quantizers of ``model`` answer ``max_available_float`` for the QONNX export."""
    from brevitas.proxy.float_parameter_quant import WeightFloatQuantProxyFromInjector
    from brevitas.proxy.float_runtime_quant import ActFloatQuantProxyFromInjector

    for name, mod in model.named_modules():
        if not isinstance(mod, (WeightFloatQuantProxyFromInjector, ActFloatQuantProxyFromInjector)):
            continue
        inj = mod.quant_injector
        try:
            if inj.max_available_float is not None:
                continue
        except Exception:  # noqa: BLE001 - the injector raises its own DependencyError
            pass
        if mod.inf_values() is not None or mod.nan_values() is not None:
            raise BrevitasImportError(f"module '{name}': minifloat quantizer with inf/NaN codes but no "
                                      f"max_available_float")
        mod.quant_injector = inj.let(max_available_float=_plain_max(
            int(mod.exponent_bit_width()), int(mod.mantissa_bit_width()), int(mod.exponent_bias())))


def export_qonnx_model(module, input_shape: tuple[int, ...]):
    """The module's QONNX graph (onnx.ModelProto), exported from an eval-mode deep copy.

    ``input_shape`` excludes the batch axis, in PyTorch's layout (C, H, W)."""
    import onnx
    import torch
    from brevitas.export import export_qonnx

    m = copy.deepcopy(module).eval()
    _give_max_float(m)
    buf = io.BytesIO()
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                export_qonnx(m, torch.zeros((1,) + tuple(input_shape)), export_path=buf)
        except Exception as exc:  # noqa: BLE001 - one line naming the cause
            raise BrevitasImportError(f"Brevitas QONNX export failed with input shape {tuple(input_shape)}: "
                                      f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    if buf.tell() == 0:
        raise BrevitasImportError("Brevitas QONNX export wrote nothing")
    return onnx.load_from_string(buf.getvalue())


def import_brevitas(module, input_shape: tuple[int, ...], name: str | None = None,
                    mult_bits: int = DEFAULT_MULT_BITS, exact_scales: bool = False,
                    output: str = "logits") -> Network:
    """Convert a Brevitas model into a validated integer network (see qat.importers.from_qonnx).

    ``input_shape``: one input without the batch axis, PyTorch layout (C, H, W)."""
    model = export_qonnx_model(module, input_shape)
    net = import_qonnx(model, name or type(module).__name__, mult_bits, exact_scales, output)
    net.meta["source"] = "brevitas"
    return net


def brevitas_outputs(module, x: np.ndarray) -> np.ndarray:
    """The module's float32 outputs for inputs ``x`` (PyTorch layout), eval mode, no grad."""
    import torch

    module = module.eval()
    with torch.no_grad():
        y = module(torch.from_numpy(np.asarray(x, dtype=np.float32)))
    y = getattr(y, "value", y)
    return y.detach().cpu().numpy()


def agreement(module, net: Network, x: np.ndarray, batch: int = 4096) -> dict[str, Any]:
    """Golden model vs Brevitas on real inputs ``x`` (PyTorch layout).

    Brevitas's float32 outputs are divided by the output step and rounded to
    integers (minifloat outputs: to the format's grid): a quantized output is
    one already, up to float32's rounding of q*s; a logit (accumulator)
    output is one up to PyTorch's float32 rounding, whose size is reported as
    ``max_float_residual_steps``.  Returns counts of equal outputs, the
    largest difference in output steps, the first differing input, the
    largest relative difference of real values, and (several outputs) how
    often Brevitas's class is one of golden's largest outputs (ties in the
    exact logits are broken by float32 noise in Brevitas)."""
    from qat.ir import golden
    from qat.importers.input_quant import framework_to_network_layout, quantize_real
    from qat.ir.types import MinifloatType, unit_scale

    out_t = net.tensor_types()[net.outputs[0]]
    step = unit_scale(out_t)
    equal = total = 0
    max_diff = residual = max_rel = 0.0
    same_class = 0
    bad_rows: list[int] = []
    for i in range(0, len(x), batch):
        xb = np.asarray(x[i:i + batch], dtype=np.float32)
        raw = quantize_real(net.inputs[0], framework_to_network_layout(net, xb))
        g = np.asarray(golden.run(net, {net.inputs[0].name: raw})[net.outputs[0]], dtype=np.float64)
        b = brevitas_outputs(module, xb).astype(np.float64)
        b = (np.moveaxis(b, 1, -1) if b.ndim >= 3 else b) / step
        if isinstance(out_t, MinifloatType):
            # Brevitas's value is fl32(q * s): back to the format's grid (its raw units can exceed 2^24)
            fmt = b * 2.0 ** out_t.unit_exp
            b_int = np.asarray(minifloat_from_real(fmt.astype(np.float32), out_t, "half_even"), dtype=np.float64)
        else:
            b_int = np.round(b)
        residual = max(residual, float(np.abs(b - b_int).max()) if b.size else 0.0)
        scale = np.broadcast_to(step, g.shape)
        rel = np.abs(g - b) / np.maximum(np.abs(b), 1.0)  # relative to the value, or to one step near zero
        max_rel = max(max_rel, float(rel.max()) if rel.size else 0.0)
        if g.ndim == 2 and g.shape[1] > 1:  # Brevitas's class is one of golden's (possibly tied) maxima
            gv = g * scale
            pick = np.argmax(b * scale, axis=1)
            same_class += int((gv[np.arange(len(gv)), pick] == gv.max(axis=1)).sum())
        d = np.abs(g - b_int)
        same = d == 0
        equal += int(same.sum())
        total += same.size
        max_diff = max(max_diff, float(d.max()) if d.size else 0.0)
        rows = np.flatnonzero(~same.reshape(len(xb), -1).all(axis=1))
        bad_rows += [int(i + r) for r in rows[:MAX_LISTED - len(bad_rows)]]
    return {"outputs": total, "equal": equal, "mismatch_rate": (total - equal) / max(total, 1),
            "max_diff_steps": max_diff if math.isfinite(max_diff) else None, "first_mismatch_input": bad_rows[0] if bad_rows else None,
            "max_float_residual_steps": residual, "max_rel_diff": max_rel,
            "argmax_agreement": same_class / max(len(x), 1), "mismatch_inputs": bad_rows,
            "vectors": int(len(x))}
