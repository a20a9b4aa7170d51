"""bench/digits/run_digits.py stays runnable: one integer variant end to end with tiny settings.

Train (1 epoch, hidden 4) -> import -> golden vs Brevitas -> RTL -> Verilator co-simulation
(100 random vectors + the test set) -> a small Yosys run -> results.json / results.md / PNG.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from PIL import Image


def _png_size(path) -> tuple[int, int]:
    return Image.open(path).size


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "digits" / "run_digits.py"


def _load():
    spec = importlib.util.spec_from_file_location("run_digits", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_digits"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_digits_variant_end_to_end(tmp_path):
    rd = _load()
    from qat.recipes import brevitas_recipes as R

    data = R.digits_data()
    rec = rd.run_variant("int4", tmp_path / "work", hidden=(4,), epochs=1, n_agree=1000, n_cosim_random=100,
                         synth=True, data=data)
    r = rec["result"]
    assert 0.0 <= r["brevitas_test_acc"] <= 1.0 and 0.0 <= r["golden_test_acc"] <= 1.0
    # integer preset: golden model == Brevitas bit for bit, so the accuracies are equal
    assert r["agreement"]["inputs"] == 1000
    assert r["agreement"]["integer_mismatch_rate"] == 0.0, r["agreement"]
    assert r["golden_test_acc"] == r["brevitas_test_acc"]
    c = r["cosim"]
    assert c["ok"] and c["mismatches"] == 0 and c["vectors"] == c["exact_vectors"] == 100 + len(data[1])
    s = r["synthesis"]
    assert s["LUT"] > 0 and s["FF"] > 0 and s["logic_depth"] > 0 and s["fmax_estimate_mhz"] > 0
    assert r["rtl"]["latency_cycles"] >= 2

    out = tmp_path / "out"
    out.mkdir()
    cfg = {"hidden": [4], "epochs": 1, "seed": 0, "lr": rd.LR, "batch": rd.BATCH, "test_samples": len(data[1]),
           "train_samples": len(data[0]), "agreement_inputs": 1000, "cosim_random": 100, "board": rd.BOARD,
           "pipeline": "layer"}
    front = rd.write_results(out, [r], cfg)
    assert front == ["int4"]
    doc = json.loads((out / "results.json").read_text())
    assert doc["variants"]["int4"]["synthesis"]["LUT"] == s["LUT"]
    assert "| int4 *" in (out / "results.md").read_text()
    w, h = _png_size(out / "accuracy_vs_luts.png")
    assert w > 100 and h > 100
