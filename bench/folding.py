"""Folded layers (``--reuse R``, hls.rtl.folded, issue #12 item 2): the jet tagger at reuse 1, 2, 4
(digit-serial constant logic) and with ``--fold dsp`` (multipliers for DSP48 slices) at 4, 16, 32.

For each R: the Verilog (``generate(net, reuse=...)``), a bit-exact check with the compiled harness
(rtl_sim.fast_sim) on 2,000 edge + random vectors, and Yosys ``synth_xilinx`` for the PYNQ-Z2
(xc7z020) with the hierarchy kept: LUT / FF / CARRY / DSP in total and per layer, initiation interval
and latency from the manifest.  A layer's digit-serial fold needs R <= its input bits b (a digit of at
least one bit), so the 6-bit layers take min(R, 6); ``--fold dsp`` needs R <= the terms per output,
so fc1 (16 inputs) takes min(R, 16): the per-layer factors used are in the table.

Structure candidates (one layer, fc3: 32 x 32, 6-bit unsigned inputs, 6-bit weights), also Yosys:

* ``digit-serial``: the layer's CSE'd constant adder graph over d-bit input digits plus one
  shift-accumulator per output (what hls.rtl.folded builds);
* ``phase-mux``: fold over the inputs -- each clock, ci/R multiplier slots take a phase-selected
  input and a phase-selected constant (an R-way constant mux), accumulated per output: the weights
  are no longer constants of the logic, so every slot is a general multiplier (``-nodsp``: in LUTs;
  and once more with Yosys mapping the multipliers to DSP48E1, as hls4ml's reuse factor does).

    make bench-fold          # or: .venv/bin/python bench/folding.py [--reuse 1,2,4] [--dsp-reuse 4,16,32]
                             #     [--no-candidates]

Writes bench/results/folding.{json,md}.  Yosys results are reused when the Verilog is byte-identical
to the last run's (bench/build/folding).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_meta import git_commit  # noqa: E402

OUT = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "build" / "folding"
MODEL = ROOT / "bench" / "models" / "jet_tagger.h5"
TARGET = 0.35  # issue #12: the jet tagger with --reuse 4 at <= 0.35x the unrolled LUTs


def _cached(files: dict[str, str], work: Path, run) -> dict:
    """``run(work)`` unless ``work/report.json`` was made from the same Verilog text."""
    key = hashlib.sha256("".join(k + files[k] for k in sorted(files)).encode()).hexdigest()
    rep = work / "report.json"
    if rep.exists():
        old = json.loads(rep.read_text())
        if old.get("key") == key:
            return dict(old["report"], reused=True)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name, text in files.items():
        (work / name).write_text(text)
    report = run(work)
    rep.write_text(json.dumps({"key": key, "report": report}, indent=1, sort_keys=True) + "\n")
    return dict(report, reused=False)


def layer_reuse(net, r: int, fold: str = "digits") -> dict[str, int]:
    """{MAC layer: min(R, its limit)}: the largest fold up to R of every layer; the limit is the input's
    bits for digit-serial folding and the terms per output for ``--fold dsp``."""
    from hls.rtl.folded import FOLDABLE, fold_limit

    types = net.tensor_types()
    return {op.name: min(r, fold_limit(op, int(types[op.inputs[0]].bits), fold))
            for op in net.ops if op.kind in FOLDABLE}


def synth_design(design, name: str) -> dict:
    from boards.catalog import board
    from boards.yosys_report import synth_fpga

    files = {f: design.files[f] for f in design.verilog_files if not f.endswith("_axis.v")}
    return _cached(files, WORK / name, lambda w: synth_fpga([w / f for f in sorted(files)], design.top,
                                                           board("pynq-z2"), w))


def _yosys_luts(files: dict[str, str], top: str, name: str, nodsp: bool) -> dict:
    from boards.yosys_report import classify_xilinx, yosys_path

    def run(w: Path) -> dict:
        script = "\n".join([f"read_verilog {w / f}" for f in sorted(files)] + [
            f"synth_xilinx -noiopad -family xc7 -top {top}" + (" -nodsp" if nodsp else ""),
            "tee -q -o stat.json stat -json", ""])
        (w / "synth.ys").write_text(script)
        t0 = time.perf_counter()
        subprocess.run([yosys_path(), "-q", "-s", str(w / "synth.ys")], cwd=w, check=True, capture_output=True)
        stat = json.loads((w / "stat.json").read_text())
        return {"total": classify_xilinx(stat["design"]["num_cells_by_type"]),
                "seconds": round(time.perf_counter() - t0, 1)}

    return _cached(files, WORK / name, run)


def phase_mux_layer(w: np.ndarray, b: np.ndarray, in_bits: int, r: int, name: str) -> str:
    """Candidate 'phase-mux' (measurement only): a dense layer on unsigned ``in_bits`` inputs folded over
    its inputs: each clock ci/R slots multiply a phase-selected input by a phase-selected constant."""
    ci, co = w.shape
    s = ci // r
    pw = max(1, (r - 1).bit_length())
    wb = max(int(np.abs(w).max()).bit_length() + 1, 2)
    acc_w = in_bits + wb + ci.bit_length() + 2
    lines = [f"module {name} (input wire clk, input wire start, input wire [{ci * in_bits - 1}:0] in0,",
             f"  output reg [{co * acc_w - 1}:0] out);",
             f"  reg [{pw - 1}:0] ph;",
             f"  always @(posedge clk) if (start) ph <= {pw}'d1; else if (ph == {pw}'d{r - 1}) ph <= {pw}'d0; "
             f"else if (ph != {pw}'d0) ph <= ph + {pw}'d1;",
             f"  wire [{pw - 1}:0] p = start ? {pw}'d0 : ph;",
             f"  reg [{ci * in_bits - 1}:0] xr;",
             "  always @(posedge clk) if (start) xr <= in0;",
             f"  wire [{ci * in_bits - 1}:0] xv = start ? in0 : xr;"]
    for j in range(s):
        sel = " : ".join(f"(p == {pw}'d{k}) ? xv[{(k * s + j) * in_bits + in_bits - 1}:{(k * s + j) * in_bits}]"
                         for k in range(r - 1))
        last = f"xv[{((r - 1) * s + j) * in_bits + in_bits - 1}:{((r - 1) * s + j) * in_bits}]"
        lines.append(f"  wire signed [{in_bits}:0] x{j} = {{1'b0, {sel + ' : ' if sel else ''}{last}}};")
    for o in range(co):
        terms = []
        for j in range(s):
            cs = [int(w[k * s + j, o]) for k in range(r)]
            if not any(cs):
                continue
            expr = f"{wb}'sd0"
            for k in range(r - 1, -1, -1):
                c = cs[k]
                lit = f"{wb}'sd{c}" if c >= 0 else f"-{wb}'sd{-c}"
                expr = lit if k == r - 1 else f"(p == {pw}'d{k}) ? {lit} : {expr}"
            lines.append(f"  wire signed [{wb - 1}:0] c{j}_{o} = {expr};")
            terms.append(f"x{j} * c{j}_{o}")
        lines.append(f"  reg signed [{acc_w - 1}:0] a{o};")
        bias = int(b[o])
        blit = f"{acc_w}'sd{bias}" if bias >= 0 else f"-{acc_w}'sd{-bias}"
        lines.append(f"  wire signed [{acc_w - 1}:0] s{o} = (start ? {blit} : a{o}) + "
                     f"{' + '.join(terms) if terms else f'{acc_w}' + chr(39) + 'sd0'};")
        lines.append(f"  always @(posedge clk) begin a{o} <= s{o}; if (ph == {pw}'d{r - 1}) "
                     f"out[{(o + 1) * acc_w - 1}:{o * acc_w}] <= s{o}; end")
    lines += ["endmodule", ""]
    return "\n".join(lines)


def candidates(net, rs: list[int]) -> list[dict]:
    """fc3 alone: unrolled, digit-serial (hls.rtl.folded) and phase-mux at each R."""
    from hls.rtl.verilog import generate

    op = next(o for o in net.ops if o.name == "fc3")
    in_bits = int(net.tensor_types()[op.inputs[0]].bits)
    rows = []
    for r in rs:
        d = generate(net, reuse=None if r == 1 else f"fc3={r}")
        mod = f"{d.top}_fc3"
        rep = _yosys_luts({f"{mod}.v": d.files[f"{mod}.v"]}, mod, f"cand_digit_{r}", nodsp=True)
        rows.append({"layer": "fc3", "structure": "unrolled" if r == 1 else "digit-serial", "reuse": r,
                     **rep["total"], "reused": rep["reused"]})
        if r > 1 and op.arrays["weight"].shape[0] % r == 0:
            text = phase_mux_layer(op.arrays["weight"], op.arrays["bias"], in_bits, r, f"pm_fc3_{r}")
            rep = _yosys_luts({f"pm_fc3_{r}.v": text}, f"pm_fc3_{r}", f"cand_phasemux_{r}", nodsp=True)
            rows.append({"layer": "fc3", "structure": "phase-mux", "reuse": r, **rep["total"],
                         "reused": rep["reused"]})
            print(json.dumps(rows[-1]), flush=True)
            # the same text with Yosys free to map the multipliers to DSP48E1 (hls4ml's reuse factor)
            rep = _yosys_luts({f"pm_fc3_{r}.v": text}, f"pm_fc3_{r}", f"cand_phasemux_dsp_{r}", nodsp=False)
            rows.append({"layer": "fc3", "structure": "phase-mux, DSP48", "reuse": r, **rep["total"],
                         "reused": rep["reused"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reuse", default="1,2,4", help="reuse factors, digit-serial (default 1,2,4)")
    ap.add_argument("--dsp-reuse", default="4,16,32",
                    help="reuse factors with --fold dsp (default 4,16,32; '' for none)")
    ap.add_argument("--vectors", type=int, default=2000, help="vectors for the bit-exact check (default 2000)")
    ap.add_argument("--no-candidates", action="store_true", help="skip the one-layer structure comparison")
    args = ap.parse_args(argv)
    from hls.rtl.verilog import generate
    from qat.importers.convert import convert_model
    from rtl_sim.fast_sim import run_fast
    from rtl_sim.vectors import random_vectors

    t_all = time.perf_counter()
    net = convert_model(str(MODEL), None, None, None, "logits", None, False, None)
    x = random_vectors(net, args.vectors, 0)
    rs = [int(v) for v in args.reuse.split(",")]
    from hls.engine.cost import multipliers

    runs = []
    for fold, r in [("digits", r) for r in rs] + [("dsp", int(v)) for v in args.dsp_reuse.split(",") if v]:
        per = layer_reuse(net, r, fold) if r > 1 else {}
        t0 = time.perf_counter()
        d = generate(net, reuse=per or None, fold=fold)
        gen_s = time.perf_counter() - t0
        sim = run_fast(net, x, design=d)
        rep = synth_design(d, f"jet_r{r}" + ("_dsp" if fold == "dsp" else ""))
        ii = int(d.manifest.get("initiation_interval", 1))
        row = {"reuse": r, "fold": fold if r > 1 else "-", "layer_reuse": per, "multipliers": multipliers(d.files),
               "initiation_interval": ii, "latency": d.latency,
               "rtl_seconds": round(gen_s, 2), "bit_exact": f"{sim.exact_vectors}/{sim.vectors}", "ok": sim.ok,
               **rep["total"], "per_layer": {k.split("_", 2)[-1] if k.startswith(d.top + "_") else k: v["LUT"]
                                             for k, v in rep["per_module"].items()},
               "yosys_seconds": rep.get("seconds"), "yosys_reused": rep["reused"]}
        runs.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "per_layer"}), flush=True)
    base = next((r for r in runs if r["reuse"] == 1), None)
    for r in runs:
        r["lut_ratio"] = round(r["LUT"] / base["LUT"], 3) if base else None
    cands = [] if args.no_candidates else candidates(net, [v for v in rs if v <= 6])
    result = {"model": "bench/models/jet_tagger.h5 (16-64-32-32-5, 16-bit inputs, 6-bit weights/activations)",
              "board": "pynq-z2 (xc7z020, synth_xilinx -family xc7)", "git": git_commit(), "python": platform.python_version(),
              "runs": runs, "candidates": cands, "target_lut_ratio_at_reuse_4": TARGET,
              "total_seconds": round(time.perf_counter() - t_all, 1)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "folding.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    (OUT / "folding.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(res: dict) -> str:
    lines = ["# Folded layers (--reuse R): jet tagger, Yosys synth_xilinx (PYNQ-Z2)", "",
             f"Model: {res['model']}; git {res['git']}.  Reproduce: `make bench-fold`.", "",
             "| fold | reuse | per-layer R | II | latency | LUT | x unrolled | FF | CARRY | DSP | bit-exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        per = ", ".join(f"{k}={v}" for k, v in r["layer_reuse"].items()) or "-"
        lines.append(f"| {r.get('fold', 'digits')} | {r['reuse']} | {per} | {r['initiation_interval']} | {r['latency']} | {r['LUT']} | "
                     f"{r['lut_ratio']} | {r['FF']} | {r['CARRY']} | {r['DSP']} | {r['bit_exact']} |")
    layers = sorted({k for r in res["runs"] for k in r["per_layer"]})
    lines += ["", "LUTs per layer:", "", "| fold | reuse | " + " | ".join(layers) + " |",
              "|---|---|" + "---|" * len(layers)]
    for r in res["runs"]:
        lines.append(f"| {r.get('fold', 'digits')} | {r['reuse']} | " +
                     " | ".join(str(r["per_layer"].get(k, "")) for k in layers) + " |")
    if res["candidates"]:
        lines += ["", "Structure candidates on one layer (fc3, 32x32, uint6 inputs; synth_xilinx, -nodsp unless "
                      "the structure says DSP48):", "",
                  "| structure | reuse | LUT | FF | CARRY | DSP |", "|---|---|---|---|---|---|"]
        for c in res["candidates"]:
            lines.append(f"| {c['structure']} | {c['reuse']} | {c['LUT']} | {c['FF']} | {c['CARRY']} | "
                         f"{c.get('DSP', 0)} |")
    for four in (r for r in res["runs"] if r["reuse"] == 4 and r["lut_ratio"] is not None):
        met = "met" if four["lut_ratio"] <= res["target_lut_ratio_at_reuse_4"] else "NOT met"
        lines += ["", f"Target (issue #12): reuse 4 at <= {res['target_lut_ratio_at_reuse_4']}x the unrolled LUTs, "
                      f"fold {four.get('fold', 'digits')}: {four['lut_ratio']}x ({four['DSP']} DSP48), {met}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
