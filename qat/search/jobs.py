"""The search's jobs: pure functions of (model reference, data, parameters) -> JSON-able dict.

Each runs unchanged in the driver or as a Ray task (qat.search.runner); the same arguments give
the same result in any process (seeded, TensorFlow op determinism, one thread per op).
``data`` holds ``x_sens``/``y_sens`` (sensitivity set: the first training samples), ``x_train``,
``y_train``, ``x_test``, ``y_test``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from qat.search.frameworks import ModelRef, materialize, module
from qat.search.metric import MetricRef, score


def _evaluate(fw, m, data: dict[str, np.ndarray], part: str, metric: MetricRef | None) -> dict[str, float]:
    """Loss and metric on ``x_<part>``/``y_<part>``: the framework's (accuracy or -MSE) or the model's own."""
    x, y = data[f"x_{part}"], data[f"y_{part}"]
    res = fw.evaluate(m, x, y)
    if metric is not None:
        res["metric"] = score(metric, lambda v: np.asarray(fw.outputs(m, v)), data)
    return res


def base(ref: ModelRef, data: dict[str, np.ndarray], metric: MetricRef | None = None) -> dict[str, Any]:
    """Loss and metric of the model as given, on the sensitivity and test sets."""
    fw, m = module(ref.framework), materialize(ref)
    return {"sens": fw.evaluate(m, data["x_sens"], data["y_sens"]),
            "test": _evaluate(fw, m, data, "test", metric), "widths": fw.widths_of(m)}


def measured(ref: ModelRef, data: dict[str, np.ndarray], layer: str, width: int) -> dict[str, Any]:
    """Loss on the sensitivity set when only ``layer`` is re-quantized to ``width`` bits, and the
    squared weight perturbation ||Q_w(W) - W||^2 (for the Hessian-weighted sensitivity)."""
    fw, m = module(ref.framework), materialize(ref)
    mw = fw.with_widths(m, {layer: width})
    err, n = fw.weight_error(m, layer, width)
    return {"loss": fw.evaluate(mw, data["x_sens"], data["y_sens"])["loss"], "weight_error": err, "n_weights": n}


def hessian(ref: ModelRef, data: dict[str, np.ndarray], layer: str, samples: int, seed: int) -> dict[str, Any]:
    """Hutchinson estimate of the Hessian trace of the loss w.r.t. ``layer``'s weights."""
    fw, m = module(ref.framework), materialize(ref)
    n = min(len(data["x_sens"]), 256)
    return {"trace": fw.hutchinson_trace(m, layer, data["x_sens"][:n], data["y_sens"][:n], samples, seed)}


def price(ref: ModelRef, layer: str, width: int, layers: list[str], board: str, method: str,
          cache_root: str | None) -> dict[str, Any]:
    """LUTs of ``layer``'s integer sub-network with its weights at ``width`` bits (qat.search.price).
    A price already in the cache under the generated Verilog's hash is reused, not recomputed."""
    from qat.ir.network import NetworkError
    from qat.search import price as pr
    from qat.search.cache import JobCache

    fw, m = module(ref.framework), materialize(ref)
    try:
        net = fw.to_network(fw.with_widths(m, {layer: width}))
        groups, _ = pr.layer_groups(net, layers)
        design = pr.design_of(pr.subnetwork(net, groups[layer], f"{layer}_w{width}"))
    except (NetworkError, ValueError) as exc:
        return {"error": str(exc).splitlines()[0]}
    key = pr.price_key(design, board, method)
    cache = JobCache(cache_root) if cache_root else None
    hit = cache.get("verilog_price", key) if cache else None
    res = dict(hit) if hit else pr.price(design, board, method, cache)
    res.update(verilog_key=key, ops=[op.name for op in groups[layer]], reused=bool(hit))
    if cache and not hit:
        cache.put("verilog_price", key, {k: v for k, v in res.items() if k not in ("verilog_key", "ops", "reused")})
    return res


def fixed_price(ref: ModelRef, layers: list[str], board: str, method: str,
                cache_root: str | None = None) -> dict[str, Any]:
    """LUTs of the ops before the first searched layer (0 when there are none)."""
    from qat.search import price as pr
    from qat.search.cache import JobCache

    fw, m = module(ref.framework), materialize(ref)
    net = fw.to_network(m)
    _, fixed = pr.layer_groups(net, layers)
    if not fixed:
        return {"luts": 0.0, "ops": []}
    res = pr.price(pr.design_of(pr.subnetwork(net, fixed, "fixed")), board, method,
                   JobCache(cache_root) if cache_root else None)
    res["ops"] = [op.name for op in fixed]
    return res


def evaluate(ref: ModelRef, data: dict[str, np.ndarray], widths: dict[str, int],
             metric: MetricRef | None = None) -> dict[str, Any]:
    """Test loss and metric at ``widths`` (post-training quantization, no fine-tuning)."""
    fw, m = module(ref.framework), materialize(ref)
    return _evaluate(fw, fw.with_widths(m, widths), data, "test", metric)


def finetune(ref: ModelRef, data: dict[str, np.ndarray], widths: dict[str, int], epochs: int, lr: float,
             seed: int, metric: MetricRef | None = None) -> dict[str, Any]:
    """QAT fine-tuning at ``widths`` with the framework's recipe; the test metric before and after and
    the fine-tuned model's bytes (``model_bytes``, stored by the caller next to the result)."""
    fw, m = module(ref.framework), materialize(ref)
    mw = fw.with_widths(m, widths)
    before = _evaluate(fw, mw, data, "test", metric)
    fw.finetune(mw, data["x_train"], data["y_train"], epochs, lr, seed)
    after = _evaluate(fw, mw, data, "test", metric)
    return {"before": before, "after": after, "model_bytes": fw.to_ref_payload(mw)}


def verify(ref: ModelRef, data: dict[str, np.ndarray], board: str, n_random: int, synth: bool,
           seed: int, cache_root: str | None = None) -> dict[str, Any]:
    """convert -> golden == framework (test set) -> fast RTL co-simulation -> Yosys of the whole network
    (cached under ``cache_root`` by the generated Verilog: the same design is synthesized once)."""
    from qat.search.cache import JobCache
    from qat.search.verify import verify_model

    fw, m = module(ref.framework), materialize(ref)
    return verify_model(fw, m, data["x_test"], board, n_random, synth, seed,
                        JobCache(cache_root) if cache_root else None)
