"""qrtl benchmark: qrtl RTL vs da4ml 0.6 Verilog (same integers, same Yosys script) and
qrtl's Verilator co-simulation vs hls4ml 1.3 C-simulation (same QKeras model).

Run from the repository root:  make bench   (or .venv/bin/python bench/run_bench.py)

Stages, each printed as it runs:
  1. train the two models (seconds, deterministic); bench/models/*.h5 is replaced only if the
     weights differ from the saved ones (--reuse-models skips training)
  2. per model, the timed measurements, one at a time so timings do not disturb each other:
     QKeras -> integer network; golden vs QKeras on 20,000 inputs; hls.rtl.verilog.generate;
     Verilator co-simulation of 20,000 vectors (rtl_sim.cosim.run_cosim, no valid gaps);
     da4ml 0.6 (its own venv, bench/.venv-da4ml) on the same integers; hls4ml 1.3
     convert + g++ compile + predict of 20,000 inputs
  3. Yosys synth_xilinx (xc7, boards.yosys_report.synthesize, asic=False) of every design,
     two Yosys processes at a time
  4. bench/results/results.json and bench/results/results.md

Build products go to bench/build/.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402

import models as M  # noqa: E402
from bench.run_meta import cmd_out, load_average, run_meta  # noqa: E402
from export import NotExpressible, export_for_da4ml  # noqa: E402

BUILD = BENCH / "build"
RESULTS = BENCH / "results"
MODELS = BENCH / "models"
DA4ML_VENV = BENCH / ".venv-da4ml"
DA4ML_SPEC = "da4ml==0.6.*"
BOARD = "pynq-z2"  # xc7z020, Yosys synth_xilinx -family xc7
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


LOADS: list[float] = []


def load() -> float:
    """1-minute load average: the timings below are wall-clock times on a machine that may be shared."""
    v = load_average()
    LOADS.append(v)
    return v


def rnd(x, n=3):
    return None if x is None else round(float(x), n)


# ---- environment ----------------------------------------------------------------------------------

def environment() -> dict:
    """bench.run_meta.run_meta (uncommitted paths outside bench/) plus the tool versions."""
    import hls4ml
    import qkeras
    import tensorflow as tf

    from rtl_sim.cosim import tool_env

    gxx = cmd_out(["g++", "--version"])
    return {
        **run_meta(exclude_prefix="bench/"),
        "tensorflow": tf.__version__, "qkeras": getattr(qkeras, "__version__", "?"), "hls4ml": hls4ml.__version__,
        "numpy": np.__version__, "yosys": cmd_out(["yosys", "-V"]),
        "verilator": cmd_out(["verilator", "--version"], env=tool_env()),
        "gxx": gxx.splitlines()[0] if gxx else "",
    }


# ---- 1. models ------------------------------------------------------------------------------------

def _same_weights(a: Path, b: Path) -> bool:
    from qat.importers.from_qkeras import load_model

    wa, wb = load_model(a).get_weights(), load_model(b).get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def ensure_models(names: list[str], reuse: bool) -> dict:
    """Train every model (deterministic, seconds); a saved model with identical weights is kept as is,
    so the committed files do not churn. ``reuse`` skips training when bench/models has the model."""
    MODELS.mkdir(parents=True, exist_ok=True)
    info_file = MODELS / "training.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    tmp = BUILD / "trained"
    tmp.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = MODELS / f"{name}.h5"
        if reuse and path.exists() and name in info:
            log(f"model {name}: reusing {path.relative_to(ROOT)}")
            info[name]["trained_this_run"] = False
            continue
        log(f"model {name}: training on synthetic data (deterministic)")
        t = time.perf_counter()
        fresh = tmp / f"{name}.h5"
        rec = M.TRAIN[name](fresh)
        rec["train_seconds"] = rnd(time.perf_counter() - t, 1)
        rec["trained_this_run"] = True
        if path.exists() and _same_weights(fresh, path):
            rec["same_weights_as_saved_model"] = True
        else:
            rec["same_weights_as_saved_model"] = False if path.exists() else None
            shutil.copyfile(fresh, path)
        info[name] = rec
        log(f"model {name}: {rec}")
    info_file.write_text(json.dumps({k: {kk: vv for kk, vv in v.items()
                                         if kk not in ("trained_this_run", "train_seconds", "same_weights_as_saved_model")}
                                     for k, v in info.items()}, indent=1, sort_keys=True) + "\n")
    return info


# ---- 2a. qrtl -------------------------------------------------------------------------------------

def qkeras_logits_model(model):
    """The model without its final softmax (QKeras's pre-softmax outputs)."""
    import tensorflow as tf

    last = model.layers[-1]
    if isinstance(last, tf.keras.layers.Activation) and last.get_config().get("activation") == "softmax":
        return tf.keras.Model(model.inputs, model.layers[-2].output, name=model.name + "_logits")
    return model


def run_qrtl(name: str, model, n_vectors: int, res: dict) -> dict:
    """Convert, check golden vs QKeras, generate RTL, co-simulate. Returns state for later stages."""
    from hls.rtl.verilog import generate
    from qat.ir import golden, netfile
    from qat.importers.input_quant import quantize_real
    from qat.importers.from_qkeras import import_qkeras
    from rtl_sim.vectors import random_vectors
    from rtl_sim.cosim import run_cosim

    work = BUILD / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    r = res.setdefault("qrtl", {})

    t = time.perf_counter()
    net = import_qkeras(model, name=name)
    r["convert_seconds"] = rnd(time.perf_counter() - t)
    netfile.save(net, work / "net")
    r["notes"] = list(net.notes)

    # golden model vs QKeras (pre-softmax) on inputs from the model's own data distribution
    x = M.test_inputs(name, n_vectors)
    raw = quantize_real(net.inputs[0], x)
    y_gold = golden.dequantize(net.tensor_types()[net.outputs[0]], golden.run(net, raw)[net.outputs[0]])
    y_qk = qkeras_logits_model(model).predict(x, batch_size=2048, verbose=0).astype(np.float64)
    eq = np.all(y_gold.reshape(len(x), -1) == y_qk.reshape(len(x), -1), axis=1)
    r["golden_vs_qkeras"] = {"inputs": len(x), "bit_equal_vectors": int(eq.sum()),
                             "compared": "qrtl golden integer model vs QKeras pre-softmax outputs"}
    log(f"{name}: golden model vs QKeras: {int(eq.sum())}/{len(x)} vectors bit-equal")

    t = time.perf_counter()
    design = generate(net)
    design.write(work / "rtl")
    r["rtl_seconds"] = rnd(time.perf_counter() - t)
    r["latency_cycles"] = design.latency
    r["verilog_bytes"] = sum(len(v) for k, v in design.files.items() if k.endswith(".v"))
    log(f"{name}: qrtl RTL generated in {r['rtl_seconds']} s, latency {design.latency} cycles")

    vectors = random_vectors(net, n_vectors, 0)
    log(f"{name}: Verilator co-simulation of {n_vectors} vectors (build, then stream one per clock)")
    cos = run_cosim(net, vectors, work / "cosim", "verilator", design, gap_probability=0.0, seed=0)
    r["cosim"] = {"simulator": cos.simulator, "vectors": cos.vectors, "exact_vectors": cos.exact_vectors,
                  "mismatches": cos.mismatches, "build_seconds": rnd(cos.build_seconds),
                  "sim_seconds": rnd(cos.sim_seconds),
                  "inferences_per_second": rnd(cos.vectors / cos.sim_seconds, 1) if cos.sim_seconds else None,
                  "gap_probability": 0.0, "load_avg_1min_after": load(), "vectors_source": "rtl_sim.vectors.random_vectors: edge vectors + uniform over "
                                                             "the whole input range"}
    log(f"{name}: {cos.describe()}; build {cos.build_seconds:.1f} s, simulation {cos.sim_seconds:.1f} s "
        f"({r['cosim']['inferences_per_second']} inferences/s)")
    return {"net": net, "design": design, "vectors": vectors,
            "expected": np.asarray(golden.run(net, vectors)[net.outputs[0]]).astype(np.int64)}


def run_qrtl_ternary(name: str, state: dict, res: dict) -> dict:
    """The same network with ``--adders ternary`` (Xilinx three-input adders), checked bit for bit against
    the golden model on the same vectors with the compiled Verilator harness (rtl_sim.fast_sim)."""
    from hls.rtl.verilog import generate
    from rtl_sim.fast_sim import run_fast

    work = BUILD / name / "rtl_ternary"
    r = res.setdefault("qrtl_ternary", {})
    t = time.perf_counter()
    design = generate(state["net"], adders="ternary")
    design.write(work)
    r["rtl_seconds"] = rnd(time.perf_counter() - t)
    r["latency_cycles"] = design.latency
    cos = run_fast(state["net"], state["vectors"], design=design)
    r["cosim"] = {"simulator": "rtl_sim.fast_sim (Verilator, compiled harness)", "vectors": cos.vectors,
                  "mismatches": cos.mismatches, "exact_vectors": cos.exact_vectors}
    log(f"{name}: qrtl ternary RTL in {r['rtl_seconds']} s, latency {design.latency}; {cos.describe()}")
    return {"design": design, "files": [work / f for f in design.verilog_files]}


# ---- 2b. da4ml ------------------------------------------------------------------------------------

def ensure_da4ml_venv() -> Path:
    py = DA4ML_VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import da4ml, numpy; assert da4ml.__version__.startswith('0.6')"],
                                        capture_output=True).returncode == 0
    if not ok:
        log(f"creating {DA4ML_VENV.relative_to(ROOT)} with pip install '{DA4ML_SPEC}' (needs numpy >= 2)")
        base = getattr(sys, "_base_executable", None) or shutil.which("python3.11") or "python3"
        subprocess.run([base, "-m", "venv", "--clear", str(DA4ML_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", DA4ML_SPEC], check=True)
    return py


def run_da4ml(name: str, state: dict, res: dict, rounding: str = "qkeras", validate_rtl: bool = False) -> dict | None:
    """da4ml 0.6 on the qrtl network's integers.  rounding 'qkeras': the same function (half-even
    requantization, bit-exact); 'half_up': da4ml's native RND rounding instead (differs on ties)."""
    key = "da4ml" if rounding == "qkeras" else "da4ml_half_up"
    r = res.setdefault(key, {})
    work = BUILD / name / key
    net, design = state["net"], state["design"]
    try:
        export_for_da4ml(net, work, state["vectors"], state["expected"])
    except NotExpressible as exc:
        r["error"] = f"not expressed: {exc}"
        log(f"{name}: da4ml skipped ({exc})")
        return None
    py = ensure_da4ml_venv()
    # da4ml registers its input as well, so N stages are N + 1 cycles: match qrtl's latency exactly
    stages = max(design.latency - 1, 1)
    what = "same integer network" if rounding == "qkeras" else "same network with half-up requantization rounding"
    log(f"{name}: da4ml 0.6 ({what}), {stages} pipeline stages (+ input register = {stages + 1} cycles)")
    t = time.perf_counter()
    from rtl_sim.cosim import tool_env

    cmd = [str(py), str(BENCH / "da4ml_helper.py"), str(work), "--stages", str(stages), "--rounding", rounding]
    if validate_rtl:
        log(f"{name}: also building da4ml's Verilator harness to check its Verilog (takes minutes)")
        cmd.append("--validate-rtl")
    p = subprocess.run(cmd, capture_output=True, text=True, env=tool_env())
    wall = time.perf_counter() - t
    (work / "helper.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        r["error"] = (p.stderr.strip().splitlines() or ["failed"])[-1]
        log(f"{name}: da4ml failed: {r['error']}")
        return None
    out = json.loads((work / "da4ml_result.json").read_text())
    r.update(out)
    r["helper_wall_seconds"] = rnd(wall)
    if rounding == "qkeras":
        r["compared"] = ("the whole integer network (dense/conv accumulators, requantization with QKeras's half-even "
                         "rounding and saturation, reshape), built from the qrtl network's own integer arrays; "
                         "da4ml's interpreter output checked bit for bit against qrtl's golden model")
    else:
        r["compared"] = ("as 'da4ml' but every requantization rounds half up (da4ml's RND, folded into the bias "
                         "constant): cheaper for da4ml, and not QKeras's function (ties round differently)")
    if "rtl_validation_bit_exact_vectors" in out:
        log(f"{name}: da4ml Verilog simulated by its Verilator harness: {out['rtl_validation_bit_exact_vectors']}/"
            f"{out['test_vectors']} vectors equal the golden model ({out['rtl_validation_inferences_per_second']} "
            f"inferences/s after a {out['rtl_validation_compile_seconds']} s build)")
    log(f"{name}: da4ml Verilog in {out['generate_seconds']} s ({out['stages']} stages, latency "
        f"{out['latency_cycles']} cycles); its interpreter equals qrtl's golden model on "
        f"{out['bit_exact_vectors']}/{out['test_vectors']} vectors")
    src = work / "rtl" / "src"
    main = sorted(src.glob("*.v"))
    text = "".join(f.read_text() for f in main)
    static = [f for f in sorted((src / "static").glob("*.v")) if re.search(rf"\b{f.stem}\b", text)]
    return {"files": main + static, "top": out["top"]}


# ---- 2c. hls4ml -----------------------------------------------------------------------------------

def run_hls4ml(name: str, model, net, n: int, res: dict) -> None:
    import hls4ml

    from qat.ir import golden
    from qat.importers.input_quant import quantize_real

    r = res.setdefault("hls4ml", {})
    x = np.ascontiguousarray(M.test_inputs(name, n, seed=11))
    # the same inputs put on the model's input-quantizer grid (what the hardware receives)
    raw = quantize_real(net.inputs[0], x)
    xq = np.ascontiguousarray(golden.dequantize(net.inputs[0].type, raw).astype(np.float32))
    y_qk_full = model.predict(x, batch_size=2048, verbose=0).reshape(n, -1)
    logits_model = qkeras_logits_model(model)
    has_softmax = logits_model is not model
    y_qk_logits = logits_model.predict(x, batch_size=2048, verbose=0).reshape(n, -1)

    def build(m, tag):
        cfg = hls4ml.utils.config_from_keras_model(m, granularity="name", backend="Vivado")
        out = BUILD / name / f"hls4ml_{tag}"
        if out.exists():
            shutil.rmtree(out)
        t = time.perf_counter()
        hm = hls4ml.converters.convert_from_keras_model(m, hls_config=cfg, backend="Vivado", output_dir=str(out),
                                                        io_type="io_parallel")
        t_conv = time.perf_counter() - t
        t = time.perf_counter()
        hm.compile()
        t_comp = time.perf_counter() - t
        return hm, t_conv, t_comp

    def predict_timed(hm, inputs):
        hm.predict(inputs[:10])  # load the library once
        t = time.perf_counter()
        y = hm.predict(inputs)
        return np.asarray(y).reshape(len(inputs), -1), time.perf_counter() - t

    def frac_equal(a, b):
        return rnd(np.mean(np.all(a == b, axis=1)), 4)

    log(f"{name}: hls4ml {hls4ml.__version__}: convert (Vivado backend, config_from_keras_model granularity='name')"
        f" and g++ compile the full model")
    hm, t_conv, t_comp = build(model, "full")
    y_raw, t_pred = predict_timed(hm, x)
    y_q, _ = predict_timed(hm, xq)
    r["full_model"] = {
        "convert_seconds": rnd(t_conv), "compile_seconds": rnd(t_comp), "predict_inputs": n,
        "predict_seconds": rnd(t_pred), "inferences_per_second": rnd(n / t_pred, 1),
        "bit_equal_to_qkeras_real_inputs": frac_equal(y_raw, y_qk_full),
        "bit_equal_to_qkeras_grid_inputs": frac_equal(y_q, y_qk_full),
        "outputs": "softmax probabilities" if has_softmax else "model outputs", "load_avg_1min_after": load(),
    }
    if has_softmax:
        r["full_model"]["argmax_agrees_with_qkeras"] = rnd(np.mean(np.argmax(y_raw, 1) == np.argmax(y_qk_full, 1)), 4)
    log(f"{name}: hls4ml compile {t_comp:.1f} s, predict {n} in {t_pred:.2f} s ({n / t_pred:.0f}/s); outputs "
        f"bit-equal to QKeras: {r['full_model']['bit_equal_to_qkeras_real_inputs']:.2%} (real inputs), "
        f"{r['full_model']['bit_equal_to_qkeras_grid_inputs']:.2%} (inputs on the quantizer grid)")
    if has_softmax:
        log(f"{name}: hls4ml without the softmax (pre-softmax logits, comparable bit for bit)")
        hm2, t_conv2, t_comp2 = build(logits_model, "logits")
        y2_raw, t_pred2 = predict_timed(hm2, x)
        y2_q, _ = predict_timed(hm2, xq)
        r["logits_model"] = {"load_avg_1min_after": load(),
            "convert_seconds": rnd(t_conv2), "compile_seconds": rnd(t_comp2), "predict_inputs": n,
            "predict_seconds": rnd(t_pred2), "inferences_per_second": rnd(n / t_pred2, 1),
            "bit_equal_to_qkeras_real_inputs": frac_equal(y2_raw, y_qk_logits),
            "bit_equal_to_qkeras_grid_inputs": frac_equal(y2_q, y_qk_logits),
            "outputs": "pre-softmax logits (model truncated before the softmax layer)",
        }
        log(f"{name}: hls4ml logits bit-equal to QKeras: {r['logits_model']['bit_equal_to_qkeras_real_inputs']:.2%}"
            f" (real inputs), {r['logits_model']['bit_equal_to_qkeras_grid_inputs']:.2%} (grid inputs)")
    r["input_precision"] = _input_precision(hm)


def _input_precision(hm) -> str:
    try:
        layer = hm.get_input_variables()[0]
        return str(layer.type.precision.definition_cpp()) if hasattr(layer.type.precision, "definition_cpp") \
            else str(layer.type.precision)
    except Exception:  # reporting only
        return "?"


# ---- 3. Yosys ---------------------------------------------------------------------------------------

def design_cells(stat_file: Path) -> dict[str, int]:
    """Cell counts of the whole design from Yosys's ``stat -json`` output.

    Yosys 0.23 writes invalid JSON for designs with more than two hierarchy levels (da4ml's
    top -> stage -> shift_adder): it prints the text hierarchy summary inside the JSON. The
    "design" block at the end is intact, so it is read with a regular expression."""
    text = stat_file.read_text()
    at = text.rfind('"design"')
    block = text[at:]
    at2 = block.find('"num_cells_by_type"')
    if at < 0 or at2 < 0:
        raise ValueError(f"{stat_file}: no design cell counts")
    body = block[at2:block.find("}", at2)]
    return {k: int(v) for k, v in re.findall(r'"([^"]+)":\s*(\d+)', body[len('"num_cells_by_type"'):])}


def synth_job(tag: str, files: list[Path], top: str, work: Path) -> dict:
    from boards.catalog import board
    from boards.yosys_report import classify_xilinx, synthesize

    t = time.perf_counter()
    note = None
    try:
        rep = synthesize(files, top, board(BOARD), work, asic=False)
        depth = rep["fpga"]["logic_depth"]
        family = rep["fpga"]["family"]
    except ValueError as exc:  # json.JSONDecodeError: see design_cells
        if not (work / "stat_fpga.json").exists() or not (work / "ltp_fpga.txt").exists():
            raise
        note = (f"boards.yosys_report could not parse Yosys's stat -json output ({str(exc).splitlines()[0]}); "
                "the same Yosys run's design totals and ltp result were read by bench/run_bench.py")
        m = re.search(r"length=(\d+)", (work / "ltp_fpga.txt").read_text())
        depth = int(m.group(1)) if m else None
        family = board(BOARD).yosys_family
        rep = None
    secs = time.perf_counter() - t
    cells = design_cells(work / "stat_fpga.json")
    total = classify_xilinx(cells)
    if rep is not None and rep["fpga"]["total"] != total:
        raise RuntimeError(f"{tag}: cell totals disagree with boards.yosys_report: {rep['fpga']['total']} vs {total}")
    out = {"family": family, **{k: total[k] for k in ("LUT", "FF", "CARRY", "DSP", "BRAM", "MUXF", "SRL")},
           "INV": int(sum(n for k, n in cells.items() if k == "INV")), "logic_depth": depth,
           "yosys_seconds": rnd(secs, 1), "load_avg_1min_after": load()}
    if note:
        out["note"] = note
    log(f"yosys {tag}: {out['LUT']} LUT, {out['FF']} FF, {out['CARRY']} CARRY, {out['DSP']} DSP, "
        f"logic depth {depth} ({secs:.0f} s)")
    return out


def synth_flat_job(tag: str, files: list[Path], top: str, work: Path) -> dict:
    """The same design through ``synth_xilinx -flatten`` (one netlist, cross-module optimisation)."""
    from boards.catalog import board
    from boards.yosys_report import classify_xilinx

    work.mkdir(parents=True, exist_ok=True)
    fam = board(BOARD).yosys_family
    script = "\n".join(["read_verilog -lib +/xilinx/cells_sim.v",  # primitives instantiated by --adders ternary
                        *(f"read_verilog {Path(f).resolve()}" for f in files), f"hierarchy -check -top {top}",
                        f"synth_xilinx -flatten -noiopad -family {fam} -top {top}",
                        "tee -q -o stat_flat.json stat -json", ""])
    (work / "synth_flat.ys").write_text(script)
    t = time.perf_counter()
    subprocess.run(["yosys", "-q", "-s", "synth_flat.ys"], cwd=work, check=True, capture_output=True, text=True)
    secs = time.perf_counter() - t
    total = classify_xilinx(design_cells(work / "stat_flat.json"))
    out = {"family": fam, "flow": "synth_xilinx -flatten",
           **{k: total[k] for k in ("LUT", "FF", "CARRY", "DSP", "BRAM", "MUXF", "SRL")},
           "yosys_seconds": rnd(secs, 1), "load_avg_1min_after": load()}
    log(f"yosys -flatten {tag}: {out['LUT']} LUT, {out['FF']} FF, {out['CARRY']} CARRY ({secs:.0f} s)")
    return out


# ---- 4. report --------------------------------------------------------------------------------------

def _models(doc: dict):
    order = {n: i for i, n in enumerate(M.MODEL_NAMES)}
    return sorted(doc["models"].items(), key=lambda kv: order.get(kv[0], len(order)))


def _pct(a, b) -> str:
    return f"{(a - b) / b:+.1%}"


def verdicts(doc: dict) -> list[str]:
    """The BRIEF's two targets, computed from the numbers above (no hand-written claims)."""
    out = []
    for name, m in _models(doc):
        q, d = m.get("qrtl", {}), m.get("da4ml", {})
        qs, ds = q.get("synth", {}), d.get("synth", {})
        if "LUT" in qs and "LUT" in ds:
            ok = qs["LUT"] < ds["LUT"] and q["latency_cycles"] <= d["latency_cycles"]
            out.append(f"{name}: fewer LUTs than da4ml (same function) at equal or lower latency: "
                       f"{'yes' if ok else 'no'} — qrtl {qs['LUT']} LUT vs da4ml {ds['LUT']} "
                       f"({_pct(qs['LUT'], ds['LUT'])}), latency {q['latency_cycles']} vs {d['latency_cycles']} "
                       f"cycles; FF {qs['FF']} vs {ds['FF']}, CARRY4 {qs['CARRY']} vs {ds['CARRY']}, "
                       f"logic depth {qs['logic_depth']} vs {ds['logic_depth']}")
        ts = m.get("qrtl_ternary", {}).get("synth", {})
        for key, flow in (("synth", "hierarchy kept"), ("synth_flat", "-flatten")):
            a = m.get("qrtl_ternary", {}).get(key, {}).get("LUT")
            b = d.get(key, {}).get("LUT")
            if a is not None and b is not None:
                lat = m["qrtl_ternary"].get("latency_cycles")
                ok = a <= 0.80 * b and lat <= d["latency_cycles"]
                out.append(f"{name}, {flow}: qrtl with ternary adders <= 0.80x da4ml's LUTs at equal or lower "
                           f"latency: {'yes' if ok else 'no'} — {a} vs {b} LUT ({a / b:.3f}x), latency {lat} vs "
                           f"{d['latency_cycles']} cycles"
                           + (f", logic depth {ts.get('logic_depth')} vs {ds.get('logic_depth')}"
                              if key == "synth" else ""))
        h = m.get("da4ml_half_up", {}).get("synth", {})
        if "LUT" in qs and "LUT" in h:
            out.append(f"{name}: against da4ml with its native half-up rounding (not QKeras's function): qrtl "
                       f"{qs['LUT']} vs {h['LUT']} LUT ({_pct(qs['LUT'], h['LUT'])})")
        cos, hl = q.get("cosim", {}), m.get("hls4ml", {}).get("full_model", {})
        if cos.get("inferences_per_second") and hl.get("inferences_per_second"):
            a, b = cos["inferences_per_second"], hl["inferences_per_second"]
            out.append(f"{name}: simulation faster than hls4ml's C-sim: {'yes' if a > b else 'no'} — "
                       f"{a:.0f} vs {b:.0f} inferences/s ({a / b:.2f}x)")
    return out


def flow_table(doc: dict) -> list[str]:
    """LUTs of qrtl and da4ml through both Yosys flows, with the qrtl/da4ml ratio."""
    L = ["## LUTs per Yosys flow: qrtl / da4ml (target: ratio <= 0.80 at equal latency)\n",
         "| model | flow | qrtl LUT | qrtl ternary LUT | da4ml LUT | ratio | ratio ternary "
         "| latency qrtl / ternary / da4ml (cycles) |", "|---|---|--:|--:|--:|--:|--:|--|"]
    for name, m in _models(doc):
        q, t, d = m.get("qrtl", {}), m.get("qrtl_ternary", {}), m.get("da4ml", {})
        for key, flow in (("synth", "hierarchy kept"), ("synth_flat", "-flatten")):
            a, c, b = q.get(key, {}).get("LUT"), t.get(key, {}).get("LUT"), d.get(key, {}).get("LUT")
            if a is None or b is None:
                continue
            L.append(f"| {name} | {flow} | {a} | {c if c is not None else '-'} | {b} | {a / b:.3f} | "
                     f"{f'{c / b:.3f}' if c is not None else '-'} | {q.get('latency_cycles')} / "
                     f"{t.get('latency_cycles', '-')} / {d.get('latency_cycles')} |")
    return L + [""]


def markdown(doc: dict) -> str:
    L = []
    L.append("# qrtl benchmark results\n")
    e = doc["environment"]
    dirty = e["git_dirty_paths"]
    L.append(f"Generated by `make bench` (`.venv/bin/python bench/run_bench.py`) on {e['date_utc']} UTC, "
             f"{e['cpus']} CPUs, qrtl commit {e['git_commit']}"
             f"{' (uncommitted changes outside bench/: ' + ', '.join(dirty) + ')' if dirty else ''}"
             f". Yosys: {e['yosys']}; Verilator: {e['verilator']}; hls4ml {e['hls4ml']}; "
             f"da4ml {doc.get('da4ml_version', '?')}; total run {doc.get('total_seconds')} s. "
             f"1-minute load average during the run: {doc.get('load_min')}-{doc.get('load_max')} "
             f"(all times are wall-clock).\n")
    runs = {(m.get("run") or {}).get("git_commit") for _, m in _models(doc)} - {None}
    if len(runs) > 1:
        L.append("Models merged from several runs (`--merge`): " + "; ".join(
            f"{n} at commit {m['run']['git_commit']} ({m['run']['date_utc']} UTC)" for n, m in _models(doc)
            if m.get("run")) + ".\n")
    L.append("## Hardware: qrtl vs da4ml (same integer network, same Yosys `synth_xilinx -family xc7`)\n")
    L.append("| model | generator | LUT | FF | CARRY4 | DSP | INV | MUXF | latency (cycles) | logic depth "
             "| RTL generation (s) | Yosys (s) | bit-exact |")
    L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for name, m in _models(doc):
        q = m.get("qrtl", {})
        qs, cos = q.get("synth", {}), q.get("cosim", {})
        L.append(f"| {name} | qrtl | {qs.get('LUT', '-')} | {qs.get('FF', '-')} | {qs.get('CARRY', '-')} | "
                 f"{qs.get('DSP', '-')} | {qs.get('INV', '-')} | {qs.get('MUXF', '-')} | "
                 f"{q.get('latency_cycles', '-')} | {qs.get('logic_depth', '-')} | "
                 f"{q.get('rtl_seconds', '-')} | {qs.get('yosys_seconds', '-')} | "
                 f"RTL (Verilator) {cos.get('exact_vectors', '-')}/{cos.get('vectors', '-')} vs golden |")
        if "qrtl_ternary" in m:
            t = m["qrtl_ternary"]
            ts, tc = t.get("synth", {}), t.get("cosim", {})
            L.append(f"| {name} | qrtl, ternary adders | {ts.get('LUT', '-')} | {ts.get('FF', '-')} | "
                     f"{ts.get('CARRY', '-')} | {ts.get('DSP', '-')} | {ts.get('INV', '-')} | {ts.get('MUXF', '-')} | "
                     f"{t.get('latency_cycles', '-')} | {ts.get('logic_depth', '-')} | {t.get('rtl_seconds', '-')} | "
                     f"{ts.get('yosys_seconds', '-')} | RTL (Verilator, compiled harness) "
                     f"{tc.get('exact_vectors', '-')}/{tc.get('vectors', '-')} vs golden |")
        for key, label in (("da4ml", f"da4ml {m.get('da4ml', {}).get('da4ml_version', '')}"),
                           ("da4ml_half_up", f"da4ml {m.get('da4ml', {}).get('da4ml_version', '')}, half-up rounding")):
            if key not in m:
                continue
            d = m[key]
            ds = d.get("synth", {})
            if "error" in d:
                L.append(f"| {name} | {label} | {d['error']} | | | | | | | | | | |")
                continue
            L.append(f"| {name} | {label} | {ds.get('LUT', '-')} | {ds.get('FF', '-')} | "
                     f"{ds.get('CARRY', '-')} | {ds.get('DSP', '-')} | {ds.get('INV', '-')} | {ds.get('MUXF', '-')} | "
                     f"{d.get('latency_cycles', '-')} | {ds.get('logic_depth', '-')} | {d.get('generate_seconds', '-')} | "
                     f"{ds.get('yosys_seconds', '-')} | da4ml interpreter {d.get('bit_exact_vectors', '-')}/"
                     f"{d.get('test_vectors', '-')} vs golden |")
    L.append("")
    L += flow_table(doc)
    L.append("## Simulation: qrtl RTL co-simulation (cocotb + Verilator) vs hls4ml C-simulation\n")
    L.append("| model | simulator | build / compile (s) | inferences | run (s) | inferences/s | "
             "outputs bit-equal |")
    L.append("|---|---|--:|--:|--:|--:|---|")
    for name, m in _models(doc):
        q, h = m.get("qrtl", {}), m.get("hls4ml", {})
        cos, g = q.get("cosim", {}), q.get("golden_vs_qkeras", {})
        L.append(f"| {name} | qrtl RTL, Verilator | {cos.get('build_seconds', '-')} | {cos.get('vectors', '-')} | "
                 f"{cos.get('sim_seconds', '-')} | {cos.get('inferences_per_second', '-')} | "
                 f"RTL vs golden model {cos.get('exact_vectors', '-')}/{cos.get('vectors', '-')}; golden model vs "
                 f"QKeras (pre-softmax) {g.get('bit_equal_vectors', '-')}/{g.get('inputs', '-')} |")
        for key, label in (("full_model", "hls4ml C-sim"), ("logits_model", "hls4ml C-sim, softmax removed")):
            if key not in h:
                continue
            f = h[key]
            L.append(f"| {name} | {label} | {f['compile_seconds']} | {f['predict_inputs']} | {f['predict_seconds']} | "
                     f"{f['inferences_per_second']} | vs QKeras, {f['outputs']}: "
                     f"{f['bit_equal_to_qkeras_real_inputs']:.2%} (real inputs), "
                     f"{f['bit_equal_to_qkeras_grid_inputs']:.2%} (inputs on the input-quantizer grid) |")
        if "error" in h:
            L.append(f"| {name} | hls4ml | {h['error']} | | | | |")
    L.append("")
    L.append("## Against the BRIEF's targets\n")
    for line in verdicts(doc):
        L.append(f"* {line}")
    L.append("")
    L.append("## What was compared\n")
    for line in doc["method"]:
        L.append(f"* {line}")
    L.append("")
    return "\n".join(L) + "\n"


METHOD = [
    "Models: trained in bench/models.py on synthetic data (seeded, TF deterministic ops, a few seconds each): "
    "(a) jet-tagger MLP 16-64-32-32-5, input quantized_bits(16,6), weights/biases quantized_bits(6,0), "
    "quantized_relu(6,2), softmax, on 5 Gaussian blobs; (b) ECON-T encoder 8x8x1 -> quantized_bits(10,3) -> QConv2D "
    "8@3x3 stride 2 same (6-bit) -> quantized_relu(11,3) -> Flatten -> QDense 16 (6-bit) -> quantized_relu(9,1), "
    "trained as an autoencoder (small float decoder) on synthetic showers. Saved in bench/models/.",
    "qrtl: QKeras -> integer network (qat.importers.from_qkeras) -> hls.rtl.verilog.generate (one pipeline stage per "
    "dense/conv and per requantization; the input is not registered). The softmax is dropped: the RTL outputs "
    "logits. 'RTL generation' = generate() + writing the files.",
    "da4ml 0.6 (bench/.venv-da4ml, numpy 2): bench/da4ml_helper.py rebuilds the same integer network from the qrtl "
    "network's own arrays with da4ml's tracer (dense = one CMVM; conv = one CMVM per output position over the "
    "in-bounds taps; requantization = floor shift + QKeras's half-even increment + saturation, written with da4ml "
    "bit operations; hard_dc=2, da4ml's CLI default), pipelines it with to_pipeline at the latency cutoff giving "
    "qrtl's latency (da4ml also registers its input, so qrtl's L cycles = L-1 da4ml stages + that input register) "
    "and writes Verilog with VerilogModel. da4ml's interpreter (CombLogic.predict, whole and stage by stage) is "
    "compared bit for bit with qrtl's golden model on the co-simulation vectors. 'RTL generation' for da4ml = "
    "tracing + CMVM optimisation + pipelining + writing, without Python start-up. The 'half-up' row is the same "
    "network with da4ml's native RND rounding (the rounding constant folds into the bias): cheaper for da4ml but a "
    "different function from QKeras's on ties, shown for context only.",
    "Synthesis: Debian Yosys, boards.yosys_report.synthesize(asic=False) for pynq-z2 = synth_xilinx -noiopad "
    "-family xc7, the same script for every design (da4ml: its top, stage modules and the library modules they "
    "use). LUT = LUT1-6 (+SRL) cells as boards.yosys_report counts them; INV and MUXF7/8 cells are listed "
    "separately, not in LUT. Logic depth = cells on the longest register-to-register path (ltp -noff on the "
    "flattened netlist). Yosys 0.23 writes invalid stat -json for da4ml's three-level hierarchy, so for those runs "
    "the design totals are read from the same file's intact 'design' block. Two Yosys processes ran at a time, "
    "after all the timed simulation measurements.",
    "qrtl simulation: rtl_sim.cosim.run_cosim with Verilator (-O3), cocotb testbench streaming one vector per "
    "clock (gap_probability=0), every output compared with the golden model; inferences/s = vectors / simulation "
    "wall time (excludes the Verilator build; includes cocotb's Python work every clock, which dominates).",
    "hls4ml 1.3: convert_from_keras_model(Vivado backend, io_parallel, config from "
    "config_from_keras_model(granularity='name') unchanged), compile() = g++ build of the C-simulation library, "
    "predict() on the same number of inputs (after one warm-up call). Bit-equality = fraction of inputs whose every "
    "output equals QKeras's float32 output exactly, with real-valued inputs (hls4ml's default input precision "
    "ap_fixed<16,6> truncates them before the input quantizer rounds: double rounding) and with inputs already on "
    "the input quantizer's grid. The jet tagger's softmax probabilities are not comparable bit for bit (hls4ml "
    "uses lookup tables), so that model is also converted without its softmax and the logits compared.",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(M.MODEL_NAMES), help="comma-separated subset of "
                                                                       f"{', '.join(M.MODEL_NAMES)}")
    ap.add_argument("--vectors", type=int, default=20000, help="co-simulation vectors and hls4ml inputs")
    ap.add_argument("--reuse-models", action="store_true", help="do not train when bench/models has the model")
    ap.add_argument("--no-synth", action="store_true", help="skip Yosys (results will have no resource counts)")
    ap.add_argument("--yosys-jobs", type=int, default=2)
    ap.add_argument("--no-flat", action="store_true", help="skip the second Yosys flow (synth_xilinx -flatten)")
    ap.add_argument("--no-half-up", action="store_true", help="skip the extra da4ml variant with half-up rounding")
    ap.add_argument("--validate-da4ml-rtl", action="store_true",
                    help="also simulate da4ml's Verilog with its own Verilator harness (several minutes per model)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other models' results of bench/results/results.json (each model records the "
                         "commit it ran on)")
    ap.add_argument("--report-only", action="store_true",
                    help="only re-render bench/results/results.md from bench/results/results.json")
    args = ap.parse_args()
    if args.report_only:
        doc = json.loads((RESULTS / "results.json").read_text())
        (RESULTS / "results.md").write_text(markdown(doc))
        print(markdown(doc))
        return 0
    names = [n for n in args.models.split(",") if n]
    for n in names:
        if n not in M.MODEL_NAMES:
            ap.error(f"unknown model {n!r}")
    BUILD.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)

    log("environment")
    load()
    doc = {"environment": environment(), "method": METHOD, "models": {}}
    if args.merge and (RESULTS / "results.json").exists():
        old = json.loads((RESULTS / "results.json").read_text())
        doc["models"] = {k: dict(v, run=v.get("run") or {"git_commit": old["environment"]["git_commit"],
                                                          "date_utc": old["environment"]["date_utc"]})
                         for k, v in old["models"].items() if k not in names}
    doc["training"] = ensure_models(names, args.reuse_models)

    from qat.importers.from_qkeras import load_model

    synth_jobs = []
    for name in names:
        res = doc["models"].setdefault(name, {})
        res["run"] = {"git_commit": doc["environment"]["git_commit"], "date_utc": doc["environment"]["date_utc"]}
        model = load_model(MODELS / f"{name}.h5")
        state = run_qrtl(name, model, args.vectors, res)
        synth_jobs.append((f"{name} qrtl", res["qrtl"], [BUILD / name / "rtl" / f for f in state["design"].verilog_files],
                           state["design"].top, BUILD / name / "synth_qrtl"))
        tern = run_qrtl_ternary(name, state, res)
        synth_jobs.append((f"{name} qrtl ternary", res["qrtl_ternary"], tern["files"], tern["design"].top,
                           BUILD / name / "synth_qrtl_ternary"))
        da = run_da4ml(name, state, res, validate_rtl=args.validate_da4ml_rtl)
        if da:
            doc["da4ml_version"] = res["da4ml"].get("da4ml_version")
            synth_jobs.append((f"{name} da4ml", res["da4ml"], da["files"], da["top"], BUILD / name / "synth_da4ml"))
        if not args.no_half_up:
            da = run_da4ml(name, state, res, "half_up")
            if da:
                synth_jobs.append((f"{name} da4ml half-up", res["da4ml_half_up"], da["files"], da["top"],
                                   BUILD / name / "synth_da4ml_half_up"))
        try:
            run_hls4ml(name, model, state["net"], args.vectors, res)
        except Exception as exc:  # report, do not hide: the error text goes into the results
            res.setdefault("hls4ml", {})["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log(f"{name}: hls4ml failed: {res['hls4ml']['error']}")

    if not args.no_synth:
        log(f"Yosys: {len(synth_jobs)} syntheses, {args.yosys_jobs} at a time (several minutes each for the jet "
            "tagger)")
        # largest designs first (Verilog size as a proxy for Yosys time), so the two workers finish together
        synth_jobs.sort(key=lambda j: -sum(Path(f).stat().st_size for f in j[2]))
        with ThreadPoolExecutor(max_workers=args.yosys_jobs) as pool:
            futs = [(tag, dest, "synth", pool.submit(synth_job, tag, files, top, work))
                    for tag, dest, files, top, work in synth_jobs]
            if not args.no_flat:
                futs += [(tag, dest, "synth_flat", pool.submit(synth_flat_job, tag, files, top,
                                                               work.with_name(work.name + "_flat")))
                         for tag, dest, files, top, work in synth_jobs]
            for tag, dest, key, fut in futs:
                try:
                    dest[key] = fut.result()
                except Exception as exc:
                    dest[key] = {"error": f"{type(exc).__name__}: {exc}"}
                    log(f"yosys {tag} ({key}) failed: {exc}")
        doc["yosys_parallel_jobs"] = args.yosys_jobs

    doc["total_seconds"] = rnd(time.perf_counter() - T0, 1)
    load()
    doc["load_min"], doc["load_max"] = min(LOADS), max(LOADS)
    (RESULTS / "results.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    (RESULTS / "results.md").write_text(markdown(doc))
    log(f"wrote {(RESULTS / 'results.json').relative_to(ROOT)} and {(RESULTS / 'results.md').relative_to(ROOT)}")
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
