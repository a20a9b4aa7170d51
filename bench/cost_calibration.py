"""Calibrate hls.engine.cost against Yosys: single constant-matrix layers (random integer
weights, one combinational module each) through ``synth_xilinx -family xc7``; records the
graph's adder bits/count and Yosys's LUTs, fits ``LUT ~ a * bits + b * adders`` (least squares)
and writes bench/results/cost_calibration.json.

    .venv/bin/python bench/cost_calibration.py            (make cost-calibration)

Also usable to compare two linear_layer implementations on one layer (``--layer``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hls.engine.cost import adder_bits  # noqa: E402
from hls.rtl.text import ModuleText  # noqa: E402

# (n_in, n_out, weight bits, input bits, input signed, zero fraction, seed)
LAYERS = [
    (16, 64, 6, 16, True, 0.0, 1),
    (64, 32, 6, 6, False, 0.3, 2),
    (32, 32, 6, 6, False, 0.3, 3),
    (32, 5, 6, 6, False, 0.0, 4),
    (9, 8, 8, 8, True, 0.0, 5),
    (72, 16, 4, 4, False, 0.5, 6),
    (24, 24, 8, 10, True, 0.2, 7),
]


def layer_module(W: np.ndarray, in_bits: int, signed: bool, method: str = "linear_layer") -> tuple[str, ModuleText]:
    """A combinational module ``L`` computing W @ x (W: n_out x n_in) on a flat input bus."""
    n_out, n_in = W.shape
    m = ModuleText("L")
    lo, hi = (-(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1) if signed else (0, (1 << in_bits) - 1)
    w = in_bits + (0 if signed else 1)
    xs = []
    for i in range(n_in):
        e = f"in0[{i * in_bits + in_bits - 1}:{i * in_bits}]"
        xs.append(m.wire("x", w, lo, hi, e if signed else f"{{1'b0, {e}}}"))
    rows = [[(xs[i], int(W[o, i])) for i in range(n_in) if W[o, i]] for o in range(n_out)]
    outs = getattr(m, method)(rows, [0] * n_out)
    ow = max(o.width for o in outs)
    parts = [m.ext(o, ow) for o in outs]
    lines = ["module L (", f"  input wire [{n_in * in_bits - 1}:0] in0,", f"  output wire [{n_out * ow - 1}:0] out", ");"]
    lines += m.lines
    lines.append(f"  assign out = {{{', '.join(reversed(parts))}}};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n", m


def yosys_luts(text: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "L.v"
        p.write_text(text)
        t = time.perf_counter()
        out = subprocess.run(["yosys", "-q", "-p", f"read_verilog {p}; synth_xilinx -noiopad -family xc7 -top L; "
                              f"tee -q -o {d}/s.json stat -json"], capture_output=True, text=True, check=True)
        del out
        cells = json.loads((Path(d) / "s.json").read_text())["design"]["num_cells_by_type"]
    lut = sum(n for k, n in cells.items() if k.startswith("LUT"))
    carry = sum(n for k, n in cells.items() if k.startswith("CARRY"))
    return {"LUT": lut, "CARRY": carry, "seconds": round(time.perf_counter() - t, 1)}


def random_layer(n_in, n_out, wbits, zero, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    W = rng.integers(-(1 << (wbits - 1)), 1 << (wbits - 1), (n_out, n_in))
    W[rng.random(W.shape) < zero] = 0
    return W


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", type=int, nargs="*", help="indices into LAYERS (default: all)")
    ap.add_argument("--method", default="linear_layer")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    rows = []
    for idx in (a.layer if a.layer else range(len(LAYERS))):
        n_in, n_out, wb, ib, sg, zero, seed = LAYERS[idx]
        W = random_layer(n_in, n_out, wb, zero, seed)
        text, m = layer_module(W, ib, sg, a.method)
        rep = yosys_luts(text)
        bits, adders = (adder_bits(m.graphs[0]) if m.graphs else (None, None))
        row = {"layer": list(LAYERS[idx]), "method": a.method, "adder_bits": bits, "adders": adders, **rep}
        print(json.dumps(row), flush=True)
        rows.append(row)
    fit = None
    pts = [r for r in rows if r["adder_bits"] is not None]
    if len(pts) >= 2:
        A = np.array([[r["adder_bits"], r["adders"]] for r in pts], dtype=float)
        y = np.array([r["LUT"] for r in pts], dtype=float)
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        pred = A @ coef
        fit = {"LUT_PER_BIT": round(float(coef[0]), 4), "LUT_OFFSET": round(float(coef[1]), 4),
               "max_rel_error": round(float(np.max(np.abs(pred - y) / y)), 4)}
        print(json.dumps(fit))
    if not a.no_write and a.method == "linear_layer" and not a.layer:
        out = ROOT / "bench" / "results" / "cost_calibration.json"
        out.write_text(json.dumps({"layers": rows, "fit": fit}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
