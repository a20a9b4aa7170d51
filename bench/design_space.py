"""Design-space report (issue #12 item 5): LUT / FF / BRAM / DSP / II / latency / estimated fmax of the
jet tagger at several reuse factors (digit-serial constant logic, and ``--fold dsp`` multipliers at
R = 4, 16 and 32) and of the MNIST CNN in the io modes ``qrtl synth`` offers, and a plot of LUTs vs
inferences per second (at the estimated fmax).

Every point is one ``qrtl synth`` run (convert, generate RTL, co-simulate against the golden model,
Yosys ``synth_xilinx`` for the PYNQ-Z2) under ``nice -n 10``; its ``report.json`` gives the figures.
Options that ``qrtl synth`` does not accept yet (``--reuse``, ``--io``) are skipped with the reason
printed and recorded.  Distributed-RAM cells (line buffers) are added to the LUTs as in
bench/streaming.py.  A run whose command and model are unchanged reuses its report (``--fresh``
re-runs everything).

    make bench-space          # or: .venv/bin/python bench/design_space.py [--models jet] [--reuse 1,4]

Writes bench/results/design_space.{json,md,png}.  The unrolled jet tagger takes 5-10 minutes in Yosys
on 2 cores; the whole report about 30-60 minutes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_meta import git_commit  # noqa: E402

OUT = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "build" / "design_space"
QRTL = [sys.executable, "-m", "qrtl.cli"]
MODELS = {
    "jet_tagger": {"path": ROOT / "bench" / "models" / "jet_tagger.h5", "io": ["parallel"],
                   "reuse": [1, 2, 4, 6], "dsp_reuse": [4, 16, "32,fc1=16"]},  # fc1 has 16 terms per output
    # fully unrolled, the MNIST CNN needs on the order of a million LUTs: streamed only
    "mnist_cnn": {"path": ROOT / "bench" / "models" / "mnist_cnn.h5", "io": ["stream"], "reuse": [1]},
}


def synth_options() -> set[str]:
    """The schedule options ``qrtl synth`` accepts (from its --help)."""
    text = subprocess.run(QRTL + ["synth", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    return {opt for opt in ("--reuse", "--io") if opt in text}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_point(model: str, path: Path, io: str, reuse: int | str, n: int, fresh: bool, fold: str = "digits") -> dict:
    """One ``qrtl synth`` run; its report.json reduced to the table's figures.  ``--fold dsp`` points
    skip the board-fit check: the table reports their DSP48 count whether or not the PYNQ-Z2 has them."""
    name = f"{model}_{io}_r{str(reuse).replace(',', '_').replace('=', '')}" + ("_dsp" if fold == "dsp" else "")
    out = WORK / name
    cmd = ["synth", str(path), "-o", str(out), "--random", str(n), "--no-asic"]
    if reuse != 1:
        cmd += ["--reuse", str(reuse)]
    if fold != "digits":
        cmd += ["--fold", fold, "--no-fit-check"]
    if io != "parallel":
        cmd += ["--io", io]
    key = json.dumps({"cmd": cmd, "model": _sha(path)}, sort_keys=True)
    stamp = out / "design_space_key.json"
    t0 = time.perf_counter()
    if fresh or not (stamp.is_file() and stamp.read_text() == key and (out / "report.json").is_file()):
        print(f"[design-space] qrtl {' '.join(cmd[:2])} {' '.join(cmd[4:])}", flush=True)
        (out / "report.json").unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
        res = subprocess.run(["nice", "-n", "10"] + QRTL + cmd, cwd=ROOT, capture_output=True, text=True)
        if not (out / "report.json").is_file():
            last = ((res.stderr or res.stdout).strip().splitlines() or ["no output"])[-1]
            if last.startswith("qrtl: error:") and ("--reuse" in last or "--io" in last):  # an option refused
                return {"model": model, "io": io, "reuse": reuse, "fold": fold,
                        "skipped": last[len("qrtl: error:"):].strip()}
            return {"model": model, "io": io, "reuse": reuse, "fold": fold,
                    "error": f"qrtl synth exit {res.returncode}: {last}"}
        stamp.write_text(key)
    rep = json.loads((out / "report.json").read_text())
    return dict(figures(rep, out), model=model, io=io, reuse=reuse, fold=fold, seconds=round(time.perf_counter() - t0, 1))


def lutram(stat_path: Path) -> tuple[int, int]:
    """(distributed-RAM cells, LUTs they occupy) from Yosys' stat_fpga.json, as bench/streaming.py."""
    from bench.streaming import lutram_luts

    if not stat_path.is_file():
        return 0, 0
    cells = json.loads(stat_path.read_text())["design"]["num_cells_by_type"]
    return lutram_luts(cells)


def figures(rep: dict, out: Path) -> dict:
    tot = rep["synthesis"]["fpga"]["total"]
    n_ram, ram_luts = lutram(out / "synth" / "stat_fpga.json")
    ii = int(rep.get("initiation_interval") or 1)
    latency = rep.get("latency_cycles")
    man_path = out / "rtl" / "manifest.json"
    stream = json.loads(man_path.read_text()).get("stream") if man_path.is_file() else None
    if stream:  # a streamed design: clocks per image and latency from its schedule (hls.rtl.stream)
        ii, latency = int(stream["clocks_per_image"]), stream.get("latency", latency)
    fmax = rep.get("timing", {}).get("estimated_fmax_mhz")
    cos = rep.get("cosim", {})
    return {"LUT": tot["LUT"] + ram_luts, "LUT_logic": tot["LUT"], "LUTRAM_cells": n_ram, "FF": tot["FF"],
            "CARRY4": tot["CARRY"], "DSP": tot["DSP"], "BRAM": tot["BRAM"], "ii_clocks": ii,
            "latency_clocks": latency, "fmax_mhz": fmax,
            "inferences_per_s": round(fmax * 1e6 / ii) if fmax else None,
            "bit_exact": f"{cos.get('exact_vectors', '?')}/{cos.get('vectors', '?')}"}


def _fold(row: dict) -> str:
    """The fold column: '-' for unfolded points, else digits (constant logic) or dsp (DSP48 multipliers)."""
    return row.get("fold", "digits") if row.get("reuse") not in (1, "-") else "-"


def table(rows: list[dict]) -> str:
    head = ("| model | io | reuse | fold | LUT (incl. LUTRAM) | FF | CARRY4 | DSP | BRAM | II (clocks) | "
            "latency (clocks) | est. fmax (MHz) | inferences/s | co-sim bit-exact |\n"
            "|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
    lines = []
    for r in rows:
        if "error" in r or "skipped" in r:
            lines.append(f"| {r['model']} | {r['io']} | {r['reuse']} | {_fold(r)} | "
                         f"{r.get('error') or r.get('skipped')} "
                         f"| | | | | | | | | |")
            continue
        ips = f"{r['inferences_per_s']:,}" if r["inferences_per_s"] else "?"
        lines.append(f"| {r['model']} | {r['io']} | {r['reuse']} | {_fold(r)} | {r['LUT']:,} | {r['FF']:,} | "
                     f"{r['CARRY4']:,} | "
                     f"{r['DSP']} | {r['BRAM']} | {r['ii_clocks']} | {r['latency_clocks']} | {r['fmax_mhz']} | "
                     f"{ips} | {r['bit_exact']} |")
    return head + "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get("inferences_per_s")]
    fig, ax = plt.subplots(figsize=(7.6, 5.0))
    def series(r: dict) -> str:  # one line per model and fold (DSP48 folds apart from constant logic)
        return r["model"] + (" (--fold dsp)" if r.get("fold") == "dsp" else "")

    for k, name in enumerate(sorted({series(r) for r in pts})):
        mine = sorted((r for r in pts if series(r) == name), key=lambda r: r["LUT"])
        ax.plot([r["LUT"] for r in mine], [r["inferences_per_s"] for r in mine], "o-", color=f"C{k}", label=name)
        for r in mine:
            ax.annotate(f"{r['io']}, R={r['reuse']}", (r["LUT"], r["inferences_per_s"]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8, color=f"C{k}")
    ax.axvline(53200, ls="--", color="grey", lw=1)
    ax.text(53200, ax.get_ylim()[0] if pts else 1, " PYNQ-Z2 (53,200 LUT)", fontsize=7, color="grey", va="bottom")
    if pts:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("LUTs (Yosys synth_xilinx, LUTRAM included)")
    ax.set_ylabel("inferences / s at the estimated fmax")
    ax.set_title("qrtl design space: LUTs vs throughput (reuse factor, io mode)", fontsize=10)
    ax.grid(ls=":", color="lightgrey", which="both")
    if pts:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    ap.add_argument("--reuse", help="comma-separated reuse factors (default: per model)")
    ap.add_argument("--random", type=int, default=200, metavar="N", help="co-simulation vectors per point")
    ap.add_argument("--fresh", action="store_true", help="re-run points whose report would be reused")
    args = ap.parse_args(argv)
    opts = synth_options()
    rows: list[dict] = []
    for model in args.models.split(","):
        spec = MODELS[model]
        if not spec["path"].is_file():
            print(f"[design-space] skip {model}: {spec['path'].relative_to(ROOT)} not found "
                  f"(train it with bench/mnist_cnn.py)")
            rows.append({"model": model, "io": "-", "reuse": "-", "skipped": "model file missing"})
            continue
        factors = [int(v) for v in args.reuse.split(",")] if args.reuse else spec["reuse"]
        points = [(r, "digits") for r in factors] + [(r, "dsp") for r in spec.get("dsp_reuse", [])
                                                     if not args.reuse or r in factors]  # r: int or a --reuse text
        for io in spec["io"]:
            for r, fold in points:
                missing = [o for o, need in (("--io", io != "parallel"), ("--reuse", r != 1)) if need and o not in opts]
                if missing:
                    why = f"qrtl synth has no {' / '.join(missing)} option yet"
                    print(f"[design-space] skip {model} io={io} reuse={r}: {why}")
                    rows.append({"model": model, "io": io, "reuse": r, "skipped": why})
                    continue
                rows.append(run_point(model, spec["path"], io, r, args.random, args.fresh, fold))
                print(f"[design-space] {json.dumps(rows[-1])}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"command": "make bench-space (bench/design_space.py " + " ".join(argv or sys.argv[1:]) + ")",
            "git": git_commit(),
            "machine": f"{platform.machine()}, {platform.python_version()}", "board": "pynq-z2 (xc7z020)",
            "fmax": "boards.yosys_report.timing: 0.6 ns per LUT level + 0.15 ns per carry + 4 ns per DSP48 "
                    "multiply-add on the longest path"}
    (OUT / "design_space.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, sort_keys=True) + "\n")
    md = (f"# Design space (bench/design_space.py)\n\n{meta['command']}; git {meta['git']}; {meta['board']}; "
          f"estimated fmax: {meta['fmax']}. Inferences/s = fmax / II.\n\n" + table(rows) +
          "\n![LUTs vs inferences/s](design_space.png)\n")
    (OUT / "design_space.md").write_text(md)
    plot(rows, OUT / "design_space.png")
    print(table(rows))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
