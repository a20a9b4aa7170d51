"""Integer vs minifloat on real RTL: one MLP on scikit-learn's digits, five number formats.

Run from the repository root:  make bench-digits   (or .venv/bin/python bench/digits/run_digits.py)

For each variant (Brevitas presets of qat.recipes.brevitas_recipes: int8, int4, dyadic_int4, fp8_e4m3,
fp4_e2m1), the same MLP 64-32-10, the same seeds and epochs:

  1. train (qat.recipes.brevitas_recipes.train, deterministic) and record the Brevitas test accuracy
     (360-sample stratified test split of qat.recipes.brevitas_recipes.digits_data);
  2. import (qat.importers.from_brevitas.import_brevitas; exact_scales=True for dyadic), golden-model
     test accuracy (argmax of golden logits times each output's real scale) and golden vs
     Brevitas on >= 10,000 inputs (test + train + noisy copies + uniform + edge + input-quantizer
     ties): integer mismatch rate, argmax agreement, largest relative difference;
  3. hls.rtl.verilog.generate (pipeline "layer"), Verilator co-simulation (rtl_sim.cosim.run_cosim) of
     the quantized test inputs + 1000 random/edge vectors against the golden model: 0 mismatches
     required;
  4. Yosys synth_xilinx for pynq-z2 (xc7; boards.yosys_report.synthesize, asic=False), two Yosys
     processes at a time after all co-simulations: LUT/FF/CARRY/DSP/BRAM, logic depth, latency,
     fmax estimate (boards.yosys_report.timing).

Outputs (bench/digits/): results.json + results.md (deterministic: no timings, sorted keys),
timings.json + timings.md (wall-clock times, environment), accuracy_vs_luts.png.
Build products go to bench/digits/build/ (--work).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from bench.run_meta import cmd_out, load_average, run_meta  # noqa: E402

VARIANTS = ("int8", "int4", "dyadic_int4", "fp8_e4m3", "fp4_e2m1")
HIDDEN = (32,)
EPOCHS = 10
SEED = 0
LR = 1e-2
BATCH = 64
N_AGREE = 10_000
N_COSIM_RANDOM = 1000
BOARD = "pynq-z2"

FORMATS = {  # weights / activations / bias, as the presets in qat/recipes/brevitas_recipes.py define them
    "int8": ("int8 per-tensor float scale", "uint8 float scale", "int32"),
    "int4": ("int4 per-tensor float scale", "uint4 float scale", "int32"),
    "dyadic_int4": ("int4 per-channel dyadic scale (8-bit mantissa)", "uint4 power-of-two scale", "int32"),
    "fp8_e4m3": ("FP8 E4M3 per-tensor scale", "FP8 E4M3 (signed) per-tensor scale", "float -> accumulator grid"),
    "fp4_e2m1": ("FP4 E2M1 per-tensor scale", "FP4 E2M1 (signed) per-tensor scale", "float -> accumulator grid"),
}
SHORT = {"int8": "int8 / uint8", "int4": "int4 / uint4", "dyadic_int4": "int4 dyadic / uint4 po2",
         "fp8_e4m3": "E4M3 / E4M3", "fp4_e2m1": "E2M1 / E2M1"}

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def rnd(x, n: int = 6):
    return None if x is None else float(f"{float(x):.{n}g}")


def _quiet_import():
    """Brevitas / torch.onnx print warnings on import and export; keep the log readable."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    os.environ.setdefault("TORCH_LOGS", "-all")


# ---- inputs ---------------------------------------------------------------------------------------

def _input_grid(net) -> np.ndarray:
    """Every real value the network input can take (sorted, float64)."""
    from qat.ir.types import MinifloatType, minifloat_magnitudes, unit_scale

    t = net.inputs[0].type
    s = float(unit_scale(t)[0])
    if isinstance(t, MinifloatType):
        m = minifloat_magnitudes(t).astype(np.float64)
        raw = np.concatenate([-m[::-1], m[1:]])
    else:
        raw = np.arange(t.lo, t.hi + 1, dtype=np.float64)
    return raw * s


def agreement_inputs(net, X_train: np.ndarray, X_test: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` real inputs: test + train images, noisy copies (sigma 0.05..0.3), edge images
    (zeros, all-max, saturating, negative, checkerboards), exact ties of the input quantizer
    (midpoints between adjacent representable inputs) and uniform noise in [0, 1.25)."""
    rng = np.random.default_rng(seed)
    real = np.concatenate([X_test, X_train]).astype(np.float32)
    d = real.shape[1]
    noisy = [np.clip(real + rng.normal(0, s, real.shape), -0.1, 1.1) for s in (0.05, 0.1, 0.2, 0.3)]
    hi = float(real.max())
    cb = np.resize([0.0, hi], d)
    edges = np.stack([np.zeros(d), np.full(d, hi), np.ones(d), np.full(d, 2.0), np.full(d, -0.5), cb, hi - cb,
                      np.resize([-1.0, 1.0], d)])
    grid = _input_grid(net)
    mids = (grid[:-1] + grid[1:]) / 2
    mids = mids[(mids > -0.25) & (mids < 1.25)]
    ties = rng.choice(mids, size=(min(500, max(n // 20, 1)), d))
    parts = [edges, ties, real, *noisy]
    rest = n - sum(len(p) for p in parts)
    if rest > 0:
        parts.append(rng.uniform(0, 1.25, size=(rest, d)))
    return np.concatenate(parts).astype(np.float32)[:n]  # (small n, tests: the first n)


# ---- one variant ----------------------------------------------------------------------------------

def golden_logits(net, X: np.ndarray) -> np.ndarray:
    """Golden-model outputs as real values (raw integers times each output's scale)."""
    from qat.ir import golden
    from qat.importers.input_quant import quantize_real
    from qat.ir.types import unit_scale

    raw = quantize_real(net.inputs[0], X)
    g = np.asarray(golden.run(net, {net.inputs[0].name: raw})[net.outputs[0]], dtype=np.float64)
    return g * unit_scale(net.tensor_types()[net.outputs[0]])


def run_variant(name: str, work: Path, hidden=HIDDEN, epochs: int = EPOCHS, seed: int = SEED,
                n_agree: int = N_AGREE, n_cosim_random: int = N_COSIM_RANDOM, synth: bool = True,
                data=None, board: str = BOARD) -> dict:
    """Train, import, check, generate, co-simulate (and synthesize) one variant.

    Returns {"result": deterministic record, "timings": wall-clock seconds, "rtl_dir", "top",
    "files"}.  Raises RuntimeError when the co-simulation is not bit-exact."""
    _quiet_import()
    import torch

    from hls.rtl.verilog import generate
    from qat.ir import netfile
    from qat.recipes import brevitas_recipes as R
    from qat.importers.from_brevitas import agreement, brevitas_outputs, import_brevitas
    from qat.importers.input_quant import quantize_real
    from qat.ir.types import unit_scale
    from rtl_sim.vectors import random_vectors
    from rtl_sim.cosim import run_cosim

    work = Path(work).resolve() / name
    work.mkdir(parents=True, exist_ok=True)
    X_train, X_test, y_train, y_test = data if data is not None else R.digits_data()
    preset = R.get_preset(name)
    tm: dict = {}
    res: dict = {"variant": name, "kind": preset.kind, "bits": preset.bits, "hidden": list(hidden),
                 "epochs": epochs, "seed": seed}
    if name in FORMATS:
        res["weight_format"], res["activation_format"], res["bias_format"] = FORMATS[name]

    # 1. train
    t = time.perf_counter()
    torch.manual_seed(seed)
    model = R.mlp(X_train.shape[1], list(hidden), 10, preset, input_signed=False, seed=seed)
    hist = R.train(model, X_train, y_train, epochs=epochs, lr=LR, seed=seed, batch_size=BATCH)
    res["brevitas_test_acc"] = R.evaluate(model, X_test, y_test)
    res["brevitas_train_acc"] = R.evaluate(model, X_train, y_train)
    res["final_train_loss"] = rnd(hist[-1]["loss"])
    tm["train_s"] = time.perf_counter() - t
    log(f"{name}: trained {epochs} epochs, Brevitas test accuracy {res['brevitas_test_acc']:.4f}")

    # 2. import, golden accuracy, agreement
    t = time.perf_counter()
    net = import_brevitas(model, (X_train.shape[1],), name=f"digits_{name}", exact_scales=preset.scales == "dyadic")
    tm["import_s"] = time.perf_counter() - t
    netfile.save(net, work / "net")
    res["import_notes"] = list(net.notes)
    res["input_type"] = repr(net.inputs[0].type)
    res["output_type"] = repr(net.tensor_types()[net.outputs[0]])
    dense = [op for op in net.ops if op.kind in ("dense", "conv2d")]
    res["parameters"] = int(sum(op.arrays[k].size for op in dense for k in ("weight", "bias") if k in op.arrays))
    res["accumulator_bits"] = {op.name: int(op.type.bits) for op in dense}
    t = time.perf_counter()
    g_test = golden_logits(net, X_test)
    res["golden_test_acc"] = float((np.argmax(g_test, axis=1) == y_test).mean())
    res["golden_train_acc"] = float((np.argmax(golden_logits(net, X_train), axis=1) == y_train).mean())
    x_agree = agreement_inputs(net, X_train, X_test, n_agree, seed + 7)
    ag = agreement(model, net, x_agree)
    g = golden_logits(net, x_agree)
    b = brevitas_outputs(model, x_agree).astype(np.float64)
    row = np.maximum(np.abs(b).max(axis=1, keepdims=True), np.finfo(np.float32).tiny)
    tm["agreement_s"] = time.perf_counter() - t
    res["agreement"] = {
        "inputs": int(len(x_agree)),
        "integer_mismatch_rate": rnd(ag["mismatch_rate"]),
        "max_diff_steps": rnd(ag["max_diff_steps"]),
        "max_float_residual_steps": rnd(ag["max_float_residual_steps"], 4),
        "argmax_agreement_strict": rnd(float((np.argmax(g, 1) == np.argmax(b, 1)).mean())),
        "argmax_agreement_tie_aware": rnd(ag["argmax_agreement"]),
        "max_rel_diff": rnd(ag["max_rel_diff"], 4),
        "max_abs_diff_over_row_max": rnd(float((np.abs(g - b) / row).max()), 4),
        "output_step": [rnd(s) for s in unit_scale(net.tensor_types()[net.outputs[0]])],
    }
    log(f"{name}: golden test accuracy {res['golden_test_acc']:.4f}; vs Brevitas on {len(x_agree)} inputs: "
        f"integer mismatch rate {ag['mismatch_rate']:.4g}, argmax agreement {res['agreement']['argmax_agreement_strict']}")

    # 3. RTL + co-simulation
    t = time.perf_counter()
    design = generate(net, pipeline="layer")
    rtl_dir = work / "rtl"
    design.write(rtl_dir)
    tm["rtl_s"] = time.perf_counter() - t
    raw_test = quantize_real(net.inputs[0], X_test)
    raw = np.concatenate([raw_test, random_vectors(net, n_cosim_random, seed + 1)])
    cs = run_cosim(net, raw, work / "cosim", "verilator", design, seed=seed + 1)
    tm["cosim_build_s"], tm["cosim_sim_s"] = cs.build_seconds, cs.sim_seconds
    res["rtl"] = {"top": design.top, "latency_cycles": int(design.latency), "pipeline": "layer",
                  "verilog_bytes": int(sum(len(design.files[f]) for f in design.verilog_files))}
    res["cosim"] = {"simulator": cs.simulator, "vectors": cs.vectors, "test_set_vectors": int(len(raw_test)),
                    "exact_vectors": cs.exact_vectors, "mismatches": cs.mismatches, "latency": cs.latency,
                    "ok": cs.ok}
    log(f"{name}: RTL latency {design.latency}; {cs.describe()}")
    if not cs.ok:
        raise RuntimeError(f"{name}: co-simulation not bit-exact: {cs.describe()}")
    out = {"result": res, "timings": tm, "rtl_dir": str(rtl_dir), "top": design.top,
           "files": list(design.verilog_files)}
    if synth:
        syn, secs = synth_variant(out, work / "synth", board)
        res["synthesis"] = syn
        tm["synth_s"] = secs
    return out


def synth_variant(rec: dict, work: Path, board: str = BOARD) -> tuple[dict, float]:
    """Yosys synth_xilinx for ``board``: totals, logic depth and the clock estimate."""
    from boards.catalog import board as get_board
    from boards.yosys_report import synthesize, timing

    b = get_board(board)
    t = time.perf_counter()
    rep = synthesize([Path(rec["rtl_dir"]) / f for f in rec["files"]], rec["top"], b, work, asic=False)
    secs = time.perf_counter() - t
    f = rep["fpga"]
    tmg = timing(rep, b.clock_mhz)
    return {"board": b.name, "part": b.part, "family": f["family"], **{k: int(v) for k, v in f["total"].items()},
            "logic_depth": f["logic_depth"], "path_carry_cells": f["path_carry_cells"],
            "path_other_cells": f["path_other_cells"], "fmax_estimate_mhz": tmg["estimated_fmax_mhz"],
            "target_mhz": tmg["target_mhz"], "meets_target_estimate": tmg["meets_target"],
            "per_module": f["per_module"]}, secs


# ---- reports --------------------------------------------------------------------------------------

def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def write_results(out: Path, results: list[dict], config: dict) -> list[str]:
    from plot import pareto, scatter

    pts = [(r["variant"], float(r["synthesis"]["LUT"]), 100 * r["golden_test_acc"]) for r in results
           if "synthesis" in r]
    front = pareto(pts) if pts else []
    doc = {"config": config, "variants": {r["variant"]: r for r in results}, "pareto_lut_vs_golden_acc": front}
    (out / "results.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    if pts:
        scatter(out / "accuracy_vs_luts.png", pts, "LUTs (Yosys synth_xilinx, xc7)", "test accuracy (%)",
                f"digits MLP 64-{'-'.join(map(str, config['hidden']))}-10: accuracy vs LUTs",
                notes=["filled: Pareto-optimal", "accuracy: golden model = RTL (bit-exact)"])
    md = ["# Integer vs minifloat on real RTL: MLP on scikit-learn digits", "",
          f"Generated by `make bench-digits` (`.venv/bin/python bench/digits/run_digits.py`). Same MLP "
          f"64-{'-'.join(map(str, config['hidden']))}-10 for every variant, {config['epochs']} epochs, seed "
          f"{config['seed']}, Adam lr {config['lr']}, batch {config['batch']}; test split: "
          f"{config['test_samples']} samples. Wall-clock times are in timings.md.", "",
          "| variant | weights / activations | Brevitas acc | golden acc (= RTL) | argmax agreement | LUT | FF | "
          "CARRY4 | DSP | BRAM | logic depth | latency (cycles) | fmax estimate (MHz) | co-sim |",
          "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in results:
        s = r.get("synthesis", {})
        a = r["agreement"]
        c = r["cosim"]
        md.append(f"| {r['variant']}{' *' if r['variant'] in front else ''} | {SHORT.get(r['variant'], '')} | "
                  f"{_pct(r['brevitas_test_acc'])} | {_pct(r['golden_test_acc'])} | "
                  f"{_pct(a['argmax_agreement_strict'])} | {s.get('LUT', '—')} | {s.get('FF', '—')} | "
                  f"{s.get('CARRY', '—')} | {s.get('DSP', '—')} | {s.get('BRAM', '—')} | {s.get('logic_depth', '—')} | "
                  f"{r['rtl']['latency_cycles']} | {s.get('fmax_estimate_mhz', '—')} | "
                  f"{c['exact_vectors']}/{c['vectors']} bit-exact |")
    md += ["", "`*` = Pareto-optimal in (fewer LUTs, higher golden test accuracy).", "",
           "## Golden model vs Brevitas", "",
           "| variant | inputs | integer mismatch rate | max diff (output steps) | argmax agreement (strict / "
           "tie-aware) | max rel. diff | max abs diff / row max | output step |",
           "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        a = r["agreement"]
        step = a["output_step"]
        md.append(f"| {r['variant']} | {a['inputs']} | {a['integer_mismatch_rate']:.4g} | {a['max_diff_steps']:g} | "
                  f"{_pct(a['argmax_agreement_strict'])} / {_pct(a['argmax_agreement_tie_aware'])} | "
                  f"{a['max_rel_diff']:.3g} | {a['max_abs_diff_over_row_max']:.3g} | "
                  f"{step[0]:.4g}{' (per channel)' if len(step) > 1 else ''} |")
    md += ["", "## Formats and importer notes", ""]
    for r in results:
        md.append(f"* **{r['variant']}**: weights {r.get('weight_format', '?')}; activations "
                  f"{r.get('activation_format', '?')}; bias {r.get('bias_format', '?')}; input type "
                  f"`{r['input_type']}`; {r['parameters']} parameters.")
        for n in r["import_notes"]:
            md.append(f"  * importer: {n}")
    md += ["", "## Method", "",
           "* Training: qat.recipes.brevitas_recipes.mlp(64, hidden, 10, preset, input_signed=False) + train() (Adam, "
           "cross-entropy, one CPU thread, seeded); inputs are pixel/16 on the 2^-8 grid (digits_data).",
           "* Brevitas acc: evaluate() (float32 PyTorch forward of the quantized model) on the test split. "
           "Golden acc: argmax of the golden integer model's outputs times each output's real scale "
           "(per-channel for dyadic) on the same split; the RTL computes these integers exactly (co-sim), so it "
           "is also the RTL's accuracy.",
           f"* Agreement: {config['agreement_inputs']} inputs = test + train images, 4 noisy copies of each "
           "(Gaussian sigma 0.05/0.1/0.2/0.3, clipped to [-0.1, 1.1]), 8 edge images (zeros, max, 1.0, 2.0, "
           "-0.5, checkerboards), 500 images of exact input-quantizer ties, the rest uniform in [0, 1.25). "
           "qat.importers.from_brevitas.agreement: Brevitas logits / output step rounded to integers vs golden integers "
           "(integer mismatch rate), tie-aware argmax agreement, largest relative difference (relative to the "
           "value or one step); plus strict argmax agreement and max |golden - Brevitas| / max |Brevitas logit| "
           "of the row.",
           "* Minifloat variants: Brevitas 0.13.4 cannot quantize biases of minifloat layers, so they are "
           "float32; the importer rounds them onto a refined accumulator grid, and Brevitas's logits are float32 "
           "sums of exact minifloat products. The output step (the accumulator grid: product of the two "
           "minifloat LSBs and scales, refined for the bias) is far finer than float32 resolves at the logits' "
           "magnitude for E4M3, so Brevitas's logits are not integers of that step and the integer mismatch rate "
           "says nothing there; the argmax agreement and the relative difference are the meaningful measures.",
           f"* RTL: hls.rtl.verilog.generate(net, pipeline='layer') (fixed weights), Verilator co-simulation via "
           f"rtl_sim.cosim.run_cosim: the quantized test inputs + {config['cosim_random']} random/edge vectors "
           "(rtl_sim.vectors.random_vectors), with random valid gaps and a reset in flight; 0 mismatches required.",
           f"* Synthesis: boards.yosys_report.synthesize(asic=False) for {config['board']} (Yosys synth_xilinx "
           "-family xc7), two Yosys processes at a time. LUT = LUT1-6 cells; logic depth = cells on the longest "
           "register-to-register path; fmax estimate = boards.yosys_report.timing (0.6 ns per LUT/mux level, "
           "0.15 ns per carry element): a proxy, not Vivado timing.",
           "", "![accuracy vs LUTs](accuracy_vs_luts.png)", ""]
    (out / "results.md").write_text("\n".join(md))
    return front


def environment() -> dict:
    """bench.run_meta.run_meta (uncommitted paths outside bench/digits) plus the tool versions."""
    import brevitas
    import torch

    from rtl_sim.cosim import tool_env

    return {**run_meta(exclude_prefix="bench/digits"), "torch": torch.__version__, "brevitas": brevitas.__version__,
            "numpy": np.__version__, "yosys": cmd_out(["yosys", "-V"]),
            "verilator": cmd_out(["verilator", "--version"], env=tool_env())}


def write_timings(out: Path, timings: dict, env: dict, total: float, loads: list[float]) -> None:
    doc = {"environment": env, "total_s": round(total, 1), "load_average_1min": loads,
           "variants": {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in timings.items()}}
    (out / "timings.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    cols = ("train_s", "import_s", "agreement_s", "rtl_s", "cosim_build_s", "cosim_sim_s", "synth_s")
    md = ["# Digits benchmark: wall-clock times", "",
          f"Run on {env['date_utc']} UTC, {env['cpus']} CPUs, qrtl commit {env['git_commit']}"
          + (f" (uncommitted changes: {', '.join(env['git_dirty_paths'])})" if env["git_dirty_paths"] else "")
          + f"; torch {env['torch']}, Brevitas {env['brevitas']}, {env['yosys']}, Verilator {env['verilator']}. "
          f"Total {total:.0f} s; 1-minute load average {min(loads):.2f}-{max(loads):.2f} (shared machine). "
          "Steps 1-3 ran one at a time; the Yosys runs two at a time.", "",
          "| variant | train | import | agreement (golden + Brevitas) | RTL generation | Verilator build | "
          "co-sim run | Yosys |", "|---|" + "--:|" * len(cols)]
    for k, v in timings.items():
        md.append(f"| {k} | " + " | ".join("—" if c not in v else f"{v[c]:.1f} s" for c in cols) + " |")
    (out / "timings.md").write_text("\n".join(md) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=None, metavar="PRESET")
    ap.add_argument("--hidden", type=int, nargs="+", default=list(HIDDEN))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--agree", type=int, default=N_AGREE, help="golden-vs-Brevitas inputs (default 10000)")
    ap.add_argument("--cosim-random", type=int, default=N_COSIM_RANDOM,
                    help="random/edge co-simulation vectors on top of the test set (default 1000)")
    ap.add_argument("--no-synth", action="store_true", help="skip Yosys")
    ap.add_argument("--work", default=str(HERE / "build"), help="build directory (default bench/digits/build)")
    ap.add_argument("--out", default=str(HERE), help="results directory (default bench/digits)")
    args = ap.parse_args(argv)
    _quiet_import()
    from qat.recipes import brevitas_recipes as R

    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    data = R.digits_data()
    loads = [load_average()]
    recs, timings = {}, {}
    for v in args.variants:
        recs[v] = run_variant(v, work, tuple(args.hidden), args.epochs, args.seed, args.agree, args.cosim_random,
                              synth=False, data=data)
        timings[v] = recs[v]["timings"]
        loads.append(load_average())
    if not args.no_synth:
        log(f"Yosys synth_xilinx ({BOARD}) of {len(recs)} designs, two at a time")
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = {v: pool.submit(synth_variant, r, work / v / "synth") for v, r in recs.items()}
            for v, job in jobs.items():
                syn, secs = job.result()
                recs[v]["result"]["synthesis"] = syn
                timings[v]["synth_s"] = secs
                loads.append(load_average())
                log(f"{v}: {syn['LUT']} LUT, {syn['FF']} FF, {syn['CARRY']} CARRY4, {syn['DSP']} DSP, depth "
                    f"{syn['logic_depth']}, fmax estimate {syn['fmax_estimate_mhz']} MHz ({secs:.0f} s)")
    config = {"hidden": list(args.hidden), "epochs": args.epochs, "seed": args.seed, "lr": LR, "batch": BATCH,
              "test_samples": int(len(data[1])), "train_samples": int(len(data[0])),
              "agreement_inputs": args.agree, "cosim_random": args.cosim_random, "board": BOARD,
              "pipeline": "layer"}
    front = write_results(out, [recs[v]["result"] for v in args.variants], config)
    write_timings(out, timings, environment(), time.perf_counter() - T0, loads)
    log(f"wrote {out / 'results.md'}; Pareto-optimal (LUT vs accuracy): {', '.join(front) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
