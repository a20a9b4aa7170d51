"""Verification of a chosen, fine-tuned model: the integer network must reproduce the framework
bit for bit, the generated RTL must reproduce the integer network bit for bit, and the whole
network is synthesized so the predicted LUTs can be checked against Yosys."""
from __future__ import annotations

import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def golden_vs_framework(fw: ModuleType, model, net, x: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Exact-match count of the golden model's dequantized outputs against the framework's, and the raw inputs."""
    from qat.importers.input_quant import framework_to_network_layout, quantize_real
    from qat.ir import golden

    raw = quantize_real(net.inputs[0], framework_to_network_layout(net, x, real=True))
    if hasattr(fw, "golden_agreement"):  # frameworks whose outputs need their own comparison (Brevitas logits)
        return fw.golden_agreement(model, net, x), raw
    out = golden.run(net, raw)[net.outputs[0]]
    deq = golden.dequantize(net.tensor_types()[net.outputs[0]], out).reshape(len(x), -1)
    ref = np.asarray(fw.outputs(model, x), dtype=np.float64).reshape(len(x), -1)
    bad = np.flatnonzero(np.any(deq != ref, axis=1))
    return {"vectors": int(len(x)), "exact_vectors": int(len(x) - len(bad)), "ok": not len(bad),
            "first_mismatch": int(bad[0]) if len(bad) else None}, raw


def synthesize_design(design, board: str, cache=None) -> dict[str, Any]:
    """Yosys synth_xilinx of a whole generated design for the board: totals, LUTs per module, seconds;
    cached (``cache``: a JobCache) under the SHA-256 of the board and the Verilog, so a design is
    synthesized once however many jobs ask (and again as soon as the generator changes it)."""
    from boards.catalog import board as get_board
    from boards.yosys_report import synthesize
    from qat.search.cache import content_key
    from qat.search.price import verilog_text

    key = content_key("synthesis", board, verilog_text(design))
    hit = cache.get("synthesis", key) if cache is not None else None
    if hit is not None:
        return hit
    with tempfile.TemporaryDirectory() as d:
        files = [p for p in design.write(Path(d) / "rtl") if p.suffix == ".v" and not p.name.endswith("_axis.v")]
        rep = synthesize(files, design.top, get_board(board), Path(d) / "synth", asic=False)
    res = {"total": rep["fpga"]["total"], "per_module": rep["fpga"]["per_module"],
           "seconds": rep["fpga"]["seconds"], "family": rep["fpga"]["family"]}
    if cache is not None:
        cache.put("synthesis", key, res)
    return res


def verify_model(fw: ModuleType, model, x_test: np.ndarray, board: str, n_random: int, synth: bool,
                 seed: int, cache=None) -> dict[str, Any]:
    """convert -> golden == framework on ``x_test`` -> fast co-simulation on ``x_test`` plus
    ``n_random`` edge/random vectors -> (``synth``) Yosys synth_xilinx of the whole network
    (:func:`synthesize_design`, cached in ``cache`` when given)."""
    from hls.rtl.verilog import generate
    from rtl_sim.fast_sim import run_fast
    from rtl_sim.vectors import random_vectors

    net = fw.to_network(model)
    gold, raw = golden_vs_framework(fw, model, net, x_test)
    design = generate(net)
    vecs = np.concatenate([raw, random_vectors(net, n_random, seed)]) if n_random else raw
    cos = run_fast(net, vecs, design)
    res: dict[str, Any] = {"golden_vs_framework": gold,
                           "cosim": {"vectors": cos.vectors, "exact_vectors": cos.exact_vectors,
                                     "mismatches": cos.mismatches, "ok": cos.ok, "latency": cos.latency},
                           "ok": bool(gold["ok"] and cos.ok)}
    if synth:
        res["synthesis"] = synthesize_design(design, board, cache)
    return res
