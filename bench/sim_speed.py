"""Simulation speed: the compiled Verilator harness (rtl_sim.fast_sim) vs the cocotb testbench
(rtl_sim.cosim) vs hls4ml 1.3 C-simulation, on the shipped jet tagger and ECON-T encoder.

Run from the repository root:  make bench-sim   (or .venv/bin/python bench/sim_speed.py)

Per model (examples/jet_tagger/jet_tagger.h5, examples/econ_autoencoder/econ_encoder.h5):
  * QKeras -> integer network -> hls.rtl.verilog.generate (default pipeline: one stage per layer);
  * fast harness: cold build (this design's cache entry removed first; Verilator's run-time
    library objects come from rtl_sim.objcache as in every build), cached build, then N vectors
    (rtl_sim.vectors.random_vectors) through run_fast with every output compared with the golden
    model; inferences/s = N / (pack + run + unpack) wall time, with one process per CPU and with one;
  * cocotb: run_cosim with Verilator, no valid gaps, N_cocotb vectors (build always from scratch);
  * hls4ml 1.3: convert (Vivado backend, io_parallel, config_from_keras_model granularity='name'),
    compile (g++), predict() of N inputs after a warm-up call (the same vectors, dequantized);
  * the jet tagger with --pipeline depth:1 (a register after every adder level) through the harness.
Results: bench/results/sim_speed.json and .md. Timings are wall-clock on a shared machine; the
1-minute load average is recorded next to each measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.run_meta import cmd_out, load_average, run_meta  # noqa: E402

BUILD = BENCH / "build" / "sim_speed"
RESULTS = BENCH / "results"
MODELS = {"jet_tagger": ROOT / "examples" / "jet_tagger" / "jet_tagger.h5",
          "econ_encoder": ROOT / "examples" / "econ_autoencoder" / "econ_encoder.h5"}
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def rnd(v, k=3):
    return None if v is None else round(float(v), k)


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_fast(name: str, net, design, vectors: np.ndarray) -> dict:
    from rtl_sim import fast_sim

    key = fast_sim.build_key(design)
    entry = fast_sim.fast_cache_dir() / key[:24]
    shutil.rmtree(entry, ignore_errors=True)
    c0, t = child_cpu(), time.perf_counter()
    fb = fast_sim.build(design)
    cold, cold_cpu = time.perf_counter() - t, child_cpu() - c0
    assert not fb.cached
    t = time.perf_counter()
    fb2 = fast_sim.build(design)
    cached = time.perf_counter() - t
    assert fb2.cached
    log(f"{name}: fast harness build {cold:.1f} s cold ({cold_cpu:.1f} s CPU in the compilers), {cached:.3f} s cached")
    r = {"build_seconds_cold": rnd(cold, 2), "build_cpu_seconds_cold": rnd(cold_cpu, 1),
         "build_seconds_cached": rnd(cached, 3), "load_avg_1min_after_build": load_average()}
    t = time.perf_counter()
    res = fast_sim.run_fast(net, vectors, design)
    total = time.perf_counter() - t
    assert res.ok, res.describe()
    r.update(vectors=res.vectors, exact_vectors=res.exact_vectors, sim_seconds=rnd(res.sim_seconds),
             inferences_per_second=rnd(res.vectors / res.sim_seconds, 1),
             processes=min(fast_sim._cpus(), max(1, res.vectors // fast_sim.MIN_VECTORS_PER_PROCESS)),
             run_fast_wall_seconds_incl_golden_and_cached_build=rnd(total), load_avg_1min_after=load_average())
    log(f"{name}: fast harness {res.describe()}: {r['inferences_per_second']:.0f} inferences/s "
        f"({r['processes']} processes)")
    elems = fast_sim.bus_input_elements(design.manifest, vectors, name)
    c0, p0 = child_cpu(), time.process_time()
    run1 = fast_sim.simulate(fb, elems, jobs=1)
    cpu = child_cpu() - c0 + time.process_time() - p0
    r["inferences_per_second_one_process"] = rnd(len(vectors) / run1.seconds, 1)
    r["cpu_seconds_one_process"] = rnd(cpu)
    r["inferences_per_cpu_second"] = rnd(len(vectors) / cpu, 1)
    r["cycles_one_process"] = run1.cycles
    log(f"{name}: fast harness, one process: {r['inferences_per_second_one_process']:.0f} inferences/s, "
        f"{r['inferences_per_cpu_second']:.0f} per CPU second (packing + simulation + unpacking)")
    return r


def bench_cocotb(name: str, net, design, vectors: np.ndarray) -> dict:
    from rtl_sim.cosim import run_cosim

    work = BUILD / name / "cocotb"
    shutil.rmtree(work, ignore_errors=True)
    log(f"{name}: cocotb + Verilator, {len(vectors)} vectors")
    res = run_cosim(net, vectors, work, "verilator", design, gap_probability=0.0, seed=0)
    assert res.ok, res.describe()
    r = {"vectors": res.vectors, "exact_vectors": res.exact_vectors, "build_seconds": rnd(res.build_seconds, 2),
         "sim_seconds": rnd(res.sim_seconds), "inferences_per_second": rnd(res.vectors / res.sim_seconds, 1),
         "load_avg_1min_after": load_average()}
    log(f"{name}: cocotb {r['inferences_per_second']:.0f} inferences/s, build {r['build_seconds']:.1f} s")
    return r


def bench_hls4ml(name: str, path: Path, net, vectors: np.ndarray) -> dict:
    import hls4ml

    from qat.importers.from_qkeras import load_model
    from qat.ir import golden

    model = load_model(path)
    x = np.ascontiguousarray(golden.dequantize(net.inputs[0].type, vectors).astype(np.float32))
    x = x.reshape((len(x),) + tuple(model.input_shape[1:]))
    out = BUILD / name / "hls4ml"
    shutil.rmtree(out, ignore_errors=True)
    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vivado")
    t = time.perf_counter()
    hm = hls4ml.converters.convert_from_keras_model(model, hls_config=cfg, backend="Vivado", output_dir=str(out),
                                                    io_type="io_parallel")
    t_conv = time.perf_counter() - t
    t = time.perf_counter()
    hm.compile()
    t_comp = time.perf_counter() - t
    hm.predict(x[:10])
    t, p0 = time.perf_counter(), time.process_time()
    hm.predict(x)
    t_pred, cpu = time.perf_counter() - t, time.process_time() - p0
    r = {"hls4ml": hls4ml.__version__, "convert_seconds": rnd(t_conv, 2), "compile_seconds": rnd(t_comp, 2),
         "inputs": len(x), "predict_seconds": rnd(t_pred), "inferences_per_second": rnd(len(x) / t_pred, 1),
         "predict_cpu_seconds": rnd(cpu), "inferences_per_cpu_second": rnd(len(x) / cpu, 1),
         "load_avg_1min_after": load_average()}
    log(f"{name}: hls4ml {hls4ml.__version__} C-sim: compile {t_comp:.1f} s, {r['inferences_per_second']:.0f} "
        f"inferences/s, {r['inferences_per_cpu_second']:.0f} per CPU second")
    return r


def write_md(res: dict) -> str:
    lines = ["# Simulation speed: compiled Verilator harness vs cocotb vs hls4ml C-simulation", "",
             f"Generated by `make bench-sim` (`.venv/bin/python bench/sim_speed.py`) on {res['date']}, "
             f"{res['cpus']} CPUs, qrtl commit {res['commit']}; Verilator {res['verilator']}. "
             f"{res['vectors']} vectors per model for the harness and hls4ml, {res['cocotb_vectors']} for cocotb. "
             "All times are wall-clock on a shared machine (1-minute load averages in sim_speed.json).", "",
             "| model | simulator | build (s) | cached build (s) | vectors | inferences/s | vs hls4ml C-sim |",
             "|---|---|--:|--:|--:|--:|--:|"]
    cpu_lines = ["", "Per CPU second (one process, user+system time of the simulating process(es) and of Python's "
                 "packing; load-independent):", "",
                 "| model | fast harness inferences / CPU s | hls4ml C-sim inferences / CPU s | ratio |",
                 "|---|--:|--:|--:|"]
    for name, m in res["models"].items():
        h = m["hls4ml"]["inferences_per_second"]
        f, c = m["fast"], m["cocotb"]
        lines.append(f"| {name} | fast harness ({f['processes']} processes) | {f['build_seconds_cold']} | "
                     f"{f['build_seconds_cached']} | {f['vectors']} | {f['inferences_per_second']:.0f} | "
                     f"{f['inferences_per_second'] / h:.1f}x |")
        lines.append(f"| {name} | fast harness (1 process) | | | {f['vectors']} | "
                     f"{f['inferences_per_second_one_process']:.0f} | {f['inferences_per_second_one_process'] / h:.1f}x |")
        lines.append(f"| {name} | cocotb + Verilator | {c['build_seconds']} | (not cached) | {c['vectors']} | "
                     f"{c['inferences_per_second']:.0f} | {c['inferences_per_second'] / h:.2f}x |")
        lines.append(f"| {name} | hls4ml {m['hls4ml']['hls4ml']} C-sim | {m['hls4ml']['compile_seconds']} | | "
                     f"{m['hls4ml']['inputs']} | {h:.0f} | 1x |")
        cpu_lines.append(f"| {name} | {f['inferences_per_cpu_second']:.0f} | "
                         f"{m['hls4ml']['inferences_per_cpu_second']:.0f} | "
                         f"{f['inferences_per_cpu_second'] / m['hls4ml']['inferences_per_cpu_second']:.1f}x |")
        if "fast_depth1" in m:
            d = m["fast_depth1"]
            cpu_lines.append(f"| {name}, depth:1 | {d['inferences_per_cpu_second']:.0f} | | |")
            lines.append(f"| {name}, --pipeline depth:1 (latency {d['latency']}) | fast harness | "
                         f"{d['build_seconds_cold']} | {d['build_seconds_cached']} | {d['vectors']} | "
                         f"{d['inferences_per_second']:.0f} | {d['inferences_per_second'] / h:.1f}x |")
    lines += cpu_lines
    lines += ["", "## Against the targets (issue #11)", ""]
    for name, m in res["models"].items():
        f, h = m["fast"], m["hls4ml"]["inferences_per_second"]
        hc = m["hls4ml"]["inferences_per_cpu_second"]
        lines.append(f"* {name}: per CPU second {f['inferences_per_cpu_second'] / hc:.1f}x hls4ml C-sim "
                     f"({f['inferences_per_cpu_second']:.0f} vs {hc:.0f}; one harness process vs hls4ml's one thread)")
        lines.append(f"* {name}: wall clock {f['inferences_per_second'] / h:.1f}x hls4ml C-sim (target >= 10x, "
                     f"{'met' if f['inferences_per_second'] >= 10 * h else 'NOT met'}); "
                     f"{f['inferences_per_second']:.0f} inferences/s (target > 100,000: "
                     f"{'met' if f['inferences_per_second'] > 1e5 else 'NOT met'}); build {f['build_seconds_cold']} s "
                     f"cold (target <= 30 s: {'met' if f['build_seconds_cold'] <= 30 else 'NOT met'}, "
                     f"{f['build_cpu_seconds_cold']} s of compiler CPU time), {f['build_seconds_cached']} s cached "
                     f"(target <= 2 s: {'met' if f['build_seconds_cached'] <= 2 else 'NOT met'}); "
                     f"load average {f['load_avg_1min_after_build']} after the build")
    lines += ["", "## What was measured", "",
              "* Fast harness: rtl_sim.fast_sim (Verilator `-O3 --x-assign fast --x-initial fast --noassert "
              "--output-split-cfuncs 500`, g++ -O1 for the datapath, -O0 for the once-run settle code, a C++ driver "
              "feeding one packed vector per clock from a file). Cold build = this design's cache entry removed; "
              "Verilator's run-time library objects come from rtl_sim.objcache (as in every build after the first "
              "on a machine). Inferences/s = vectors / (packing + running the processes + unpacking), excluding "
              "the golden model and the comparison.",
              "* cocotb: rtl_sim.cosim.run_cosim, Verilator build with -O0 C++ (built every time), vectors back to "
              "back (no valid gaps), Python drives every clock.",
              "* hls4ml: C-simulation library compiled by hls4ml's compile(), predict() on the same vectors "
              "(dequantized to float32), timed after a warm-up call.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=100000)
    ap.add_argument("--cocotb-vectors", type=int, default=20000)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()

    from hls.rtl.verilog import generate
    from qat.importers.from_qkeras import convert_file
    from rtl_sim.vectors import random_vectors

    BUILD.mkdir(parents=True, exist_ok=True)
    from rtl_sim.cosim import tool_env

    meta = run_meta()
    ver = cmd_out(["verilator", "--version"], env=tool_env())
    res = {"date": meta["date_utc"] + " UTC", "cpus": meta["cpus"],
           "machine": meta["machine"], "commit": meta["git_commit"], "verilator": ver, "vectors": args.vectors,
           "cocotb_vectors": args.cocotb_vectors, "models": {}}
    for name in args.models:
        path = MODELS[name]
        log(f"{name}: convert {path.relative_to(ROOT)} and generate RTL")
        net = convert_file(str(path))
        design = generate(net)
        vectors = random_vectors(net, args.vectors, 0)
        m = res["models"][name] = {"latency": design.latency, "input_bits": design.manifest["input"]["width"],
                                   "output_bits": design.manifest["output"]["width"]}
        m["fast"] = bench_fast(name, net, design, vectors)
        m["cocotb"] = bench_cocotb(name, net, design, vectors[:args.cocotb_vectors])
        m["hls4ml"] = bench_hls4ml(name, path, net, vectors)
        if name == "jet_tagger":
            d1 = generate(net, pipeline="depth:1")
            log(f"{name}: --pipeline depth:1, latency {d1.latency}")
            m["fast_depth1"] = dict(bench_fast(name + " depth:1", net, d1, vectors), latency=d1.latency)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "sim_speed.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    res["total_seconds"] = rnd(time.perf_counter() - T0, 1)
    (RESULTS / "sim_speed.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    (RESULTS / "sim_speed.md").write_text(write_md(res) + "\n")
    log(f"wrote {RESULTS / 'sim_speed.json'} and sim_speed.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
