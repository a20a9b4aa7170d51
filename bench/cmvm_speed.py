"""Time and peak memory of the constant-matrix engine (hls.engine.cmvm.build) on the issue's
stress layers, and its LUT estimate (hls.engine.cost).  CPU seconds are the figure to compare on a
shared machine (wall seconds grow with the load).  One layer per child process so the peak
memory (ru_maxrss) is the layer's own.

    .venv/bin/python bench/cmvm_speed.py      (make cmvm-speed) -> bench/results/cmvm_speed.json
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_meta import load_average  # noqa: E402

# name: (n_out, n_in, weights, input lo, input hi)
LAYERS = {
    "288x16 random 12-bit weights, 8-bit signed inputs": (16, 288, "int12", -128, 127),
    "784x64 +-1 weights, 2-bit unsigned inputs": (64, 784, "pm1", 0, 3),
    "64x16 random 6-bit weights, 16-bit signed inputs (jet tagger layer 1 shape)": (64, 16, "int6", -32768, 32767),
}


def weights(kind: str, n_out: int, n_in: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "pm1":
        return rng.choice([-1, 1], size=(n_out, n_in))
    b = int(kind[3:])
    return rng.integers(-(1 << (b - 1)), 1 << (b - 1), (n_out, n_in))


def one(name: str) -> dict:
    from hls.engine.cmvm import build
    from hls.engine.cost import adder_bits, graph_luts

    n_out, n_in, kind, lo, hi = LAYERS[name]
    W = weights(kind, n_out, n_in)
    t, c = time.perf_counter(), time.process_time()
    g = build(W, np.zeros(n_out, dtype=np.int64), np.full(n_in, lo), np.full(n_in, hi))
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    return {"layer": name, "seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "adders": adder_bits(g)[1], "lut_estimate": round(graph_luts(g)), "kept": g.note,
            "load_avg_1min": load_average()}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2])))
        return 0
    rows = []
    for name in LAYERS:
        out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    (ROOT / "bench" / "results" / "cmvm_speed.json").write_text(json.dumps({"cpus": os.cpu_count(), "layers": rows},
                                                                          indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
