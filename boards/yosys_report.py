"""Resource reports from Yosys: FPGA cells per layer and an ASIC gate count.

* FPGA: ``synth_xilinx -noiopad -family <board family>`` with the design
  hierarchy kept (one module per op), so every layer gets its own LUT / FF /
  CARRY / DSP / BRAM counts; then the flattened netlist's longest
  register-to-register path (``ltp -noff``, cells on the path) as a timing
  proxy.
* ASIC: generic ``synth -flatten -noabc`` then ``abc -fast -g NAND``: 2-input NANDs and
  inverters; NAND2-equivalents count an inverter as 1 and a flip-flop as 6
  (a typical reset-less D flip-flop), both weights reported with the counts.

Yosys is Debian's ``yosys`` (0.23 is known to work); it is installed by the
project's set-up where root is available.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from .catalog import Board

NAND2_WEIGHTS = {"NAND": 1.0, "NOT": 1.0, "DFF": 6.0}
# Timing proxy for the longest register-to-register path: a LUT or mux level is
# charged 0.6 ns and a carry-chain element 0.15 ns, routing included (typical
# 7-series -1 figures, on the slow side).  Real timing needs the vendor tools
# (see qrtl vivado); this only answers "clearly fast enough?".
NS_PER_LUT = 0.6
NS_PER_CARRY = 0.15
# A DSP48 slice's multiply-add (A/B input to P, no internal pipeline register), about 4 ns on a 7-series
# -1 part (DS187's combinational DSP48E1 figures, rounded up).  A slice with its M or P register ends
# paths like a flip-flop; a path into it still pays its multiply-add once.  A design with slices
# without those registers is charged one multiply-add on top of its longest path (by cell count).
NS_PER_DSP = 4.0


# ASIC: a 65 nm NAND2 with fan-out and wire is charged 0.1 ns (conservative).
NS_PER_GATE_ASIC = 0.1


def clock_estimate(path_ns: float | None, target_mhz: float, assumption: str) -> dict:
    """Estimated clock from a path delay estimate, and whether ``target_mhz`` is met (II = 1)."""
    if not path_ns:
        return {"estimated_fmax_mhz": None, "target_mhz": target_mhz, "meets_target": None}
    fmax = 1000.0 / path_ns
    return {"estimated_fmax_mhz": round(fmax, 1), "target_mhz": target_mhz, "meets_target": fmax >= target_mhz,
            "path_ns": round(path_ns, 2), "assumption": assumption}


def timing(report: dict, target_mhz: float) -> dict:
    """Clock estimate from a synthesize() report (FPGA path if present, else ASIC gates)."""
    if "fpga" in report:
        f = report["fpga"]
        ns = (f["path_other_cells"] * NS_PER_LUT + f["path_carry_cells"] * NS_PER_CARRY +
              f.get("path_dsp_cells", 0) * NS_PER_DSP)
        if f.get("registered_dsps"):  # a LUT level into a registered slice, then its multiply-add
            ns = max(ns, NS_PER_LUT + NS_PER_DSP)
        if not f.get("path_dsp_cells") and f.get("total", {}).get("DSP", 0) > f.get("registered_dsps", 0):
            ns += NS_PER_DSP  # ltp counts cells, not delay: a shorter path may cross a combinational slice
        return clock_estimate(ns, target_mhz, f"{NS_PER_LUT} ns per LUT/mux level, {NS_PER_CARRY} ns per carry "
                                              f"element, {NS_PER_DSP} ns per DSP48 multiply-add on the longest "
                                              f"register-to-register path")
    depth = report.get("asic", {}).get("gate_depth")
    return clock_estimate(depth * NS_PER_GATE_ASIC if depth else None, target_mhz,
                          f"{NS_PER_GATE_ASIC} ns per NAND2 gate level")


class SynthError(RuntimeError):
    """Yosys is missing or failed."""


def yosys_path() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise SynthError("yosys not found on PATH: install it with 'sudo apt-get install yosys' "
                         "(make install does this when run as root)")
    return exe


def _run(script: str, work: Path, name: str, timeout: float) -> float:
    ys = work / f"{name}.ys"
    ys.write_text(script)
    log = work / f"{name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            res = subprocess.run([yosys_path(), "-q", "-s", str(ys)], cwd=work, stdout=fh, stderr=subprocess.STDOUT,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthError(f"yosys {name} exceeded {timeout:.0f} s; see {log}") from None
    if res.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise SynthError(f"yosys {name} failed: {tail[0]}; see {log}")
    return time.perf_counter() - t0


def classify_xilinx(cells: dict[str, int]) -> dict[str, int]:
    c = Counter()
    for k, n in cells.items():
        if re.fullmatch(r"LUT[1-6](_2)?", k):
            c["LUT"] += n
        elif k.startswith("SRL"):
            c["SRL"] += n
            c["LUT"] += n
        elif k.startswith("FD"):
            c["FF"] += n
        elif k.startswith("CARRY"):
            c["CARRY"] += n
        elif k.startswith("DSP48"):
            c["DSP"] += n
        elif k.startswith("RAMB"):
            c["BRAM"] += n
        elif k.startswith("MUXF"):
            c["MUXF"] += n
    return {k: int(c.get(k, 0)) for k in ("LUT", "FF", "CARRY", "DSP", "BRAM", "MUXF", "SRL")}


def _read_list(files: list[Path], defines: str = "") -> str:
    return "\n".join(f"read_verilog {defines + ' ' if defines else ''}{f}" for f in files)


_REGISTERED_DSP = "t:DSP48E1 r:PREG!=0 %i t:DSP48E1 r:MREG!=0 %i %u"  # Yosys selection


def synth_fpga(files: list[Path], top: str, board: Board, work: Path, timeout: float = 3600) -> dict:
    fam = board.yosys_family
    script = "\n".join([
        "read_verilog -lib +/xilinx/cells_sim.v",  # instantiated primitives (--adders ternary) are cells
        _read_list(files),
        f"hierarchy -check -top {top}",
        f"synth_xilinx -noiopad -family {fam} -top {top}",
        "tee -q -o stat_fpga.json stat -json",
        "flatten",
        "rename -enumerate -pattern qrtl_dsp_% t:DSP48E1",  # DSP slices on the path are told by name
        f"tee -q -o dsp_reg_fpga.txt select -count {_REGISTERED_DSP}",
        "delete t:FD*",  # Xilinx flip-flops end paths (ltp -noff only knows Yosys' own FF types)
        f"delete {_REGISTERED_DSP}",  # so do DSP slices with their M or P register
        "tee -q -o ltp_fpga.txt ltp -noff",
        "",
    ])
    secs = _run(script, work, "synth_fpga", timeout)
    stat = json.loads((work / "stat_fpga.json").read_text())
    modules = {m.lstrip("\\"): v.get("num_cells_by_type", {}) for m, v in stat["modules"].items()}
    total = classify_xilinx(stat["design"]["num_cells_by_type"])
    per_module = {m: classify_xilinx(c) for m, c in modules.items() if m != top}
    ltp = (work / "ltp_fpga.txt").read_text()
    m = re.search(r"length=(\d+)", ltp)
    via = re.findall(r"\(via ([^)]*)\)", ltp)
    carry = sum(1 for v in via if "carry" in v.lower())
    dsp = sum(1 for v in via if "qrtl_dsp_" in v)
    reg = re.search(r"(\d+) objects", (work / "dsp_reg_fpga.txt").read_text())
    return {"family": fam, "total": total, "per_module": per_module,
            "logic_depth": int(m.group(1)) if m else None, "path_carry_cells": carry, "path_dsp_cells": dsp,
            "path_other_cells": len(via) - carry - dsp, "registered_dsps": int(reg.group(1)) if reg else 0,
            "seconds": round(secs, 2)}


def synth_asic(files: list[Path], top: str, work: Path, timeout: float = 3600) -> dict:
    script = "\n".join([
        _read_list(files, "-DQRTL_PRIM_MODELS"),  # instantiated primitives (--adders ternary) as logic
        f"hierarchy -check -top {top}",
        f"synth -flatten -noabc -top {top}",  # one technology mapping below, not two
        "abc -fast -g NAND",
        "opt_clean",
        "tee -q -o stat_asic.json stat -json",
        "tee -q -o ltp_asic.txt ltp -noff",
        "",
    ])
    secs = _run(script, work, "synth_asic", timeout)
    cells = json.loads((work / "stat_asic.json").read_text())["design"]["num_cells_by_type"]
    nand = sum(n for k, n in cells.items() if "NAND" in k)
    inv = sum(n for k, n in cells.items() if "NOT" in k)
    dff = sum(n for k, n in cells.items() if "DFF" in k)
    other = {k: n for k, n in cells.items() if not any(t in k for t in ("NAND", "NOT", "DFF"))}
    eq = nand * NAND2_WEIGHTS["NAND"] + inv * NAND2_WEIGHTS["NOT"] + dff * NAND2_WEIGHTS["DFF"]
    m = re.search(r"length=(\d+)", (work / "ltp_asic.txt").read_text())
    return {"nand2": nand, "inverters": inv, "flip_flops": dff, "other_cells": other,
            "gate_depth": int(m.group(1)) if m else None,
            "nand2_equivalent": int(round(eq)), "weights": NAND2_WEIGHTS, "seconds": round(secs, 2)}


def synthesize(rtl_files: list[Path], top: str, board: Board, work_dir: str | Path, asic: bool = True,
               timeout: float = 3600) -> dict:
    """Run the FPGA (unless the board is the ASIC target) and ASIC syntheses."""
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    files = [Path(f).resolve() for f in rtl_files]
    report: dict = {"board": board.name, "part": board.part, "top": top}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:  # the two Yosys runs are independent processes
        jobs = {}
        if not board.is_asic:
            jobs["fpga"] = pool.submit(synth_fpga, files, top, board, work, timeout)
        if asic or board.is_asic:
            jobs["asic"] = pool.submit(synth_asic, files, top, work, timeout)
        for key, job in jobs.items():
            report[key] = job.result()
    return report
