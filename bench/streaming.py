"""Streaming RTL (``--io stream``, issue #12): the MNIST CNNs (QKeras and Brevitas) and the ECON-T encoder.

For each model: RTL generation time, co-simulation of the streamed design with the compiled
harness (rtl_sim.fast_sim) against the golden model (the MNIST CNNs on the 1,000 held-out MNIST
images of bench/mnist_cnn.py, the ECON-T encoder on 1,000 of its synthetic showers), clocks per
image and latency (the manifest's schedule, checked against the harness's clock count), and
Yosys ``synth_xilinx`` for the PYNQ-Z2 (xc7z020: 53,200 LUTs).  The ECON-T encoder is also
synthesized fully unrolled (``--io parallel``) for comparison.  Distributed-RAM cells (the line
buffers) are counted as LUTs too (RAM32M/RAM64M: 4 LUTs, RAM32X1D/RAM64X1D: 2, RAM128X1D: 4,
other RAM*X1*: 1).  The Brevitas CNN (bench/mnist_cnn_brevitas.py) is imported both from the module and from
the QONNX file Brevitas exports, each checked golden == Brevitas on all 5,000 images.

    make bench-stream        # or: .venv/bin/python bench/streaming.py [--no-unrolled]

Writes bench/results/streaming.{json,md}.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_meta import load_averages, run_meta  # noqa: E402

OUT = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "build" / "streaming"
PYNQ_LUTS = 53200
LUTRAM = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
          "RAM256X1D": 8}


def lutram_luts(cells: dict[str, int]) -> tuple[int, int]:
    """(distributed-RAM cells, the LUTs they occupy) from Yosys' cell counts."""
    n = luts = 0
    for k, v in cells.items():
        if k.startswith("RAM") and not k.startswith("RAMB"):
            n += v
            luts += v * LUTRAM.get(k, 1)
    return n, luts


def synth(design, name: str) -> dict:
    """Yosys for the PYNQ-Z2; reused when the Verilog is byte-identical to the last run's (seeded models
    and deterministic generation give the same text)."""
    from boards.catalog import board
    from boards.yosys_report import synthesize

    d = WORK / name
    files = [p for p in design.write(d) if p.suffix == ".v" and p.name != f"{design.manifest['axis_top']}.v"]
    key = hashlib.sha256(json.dumps({p.name: p.read_text() for p in files}, sort_keys=True).encode()).hexdigest()
    cached = d / "synth_result.json"
    if cached.exists():
        old = json.loads(cached.read_text())
        if old.get("key") == key:
            return old["result"]
    t0 = time.perf_counter()
    r = synthesize(files, design.top, board("pynq-z2"), d / "synth", asic=False)["fpga"]
    stat = json.loads((d / "synth" / "stat_fpga.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    n_ram, ram_luts = lutram_luts(cells)
    t = r["total"]
    res = {"LUT_logic": t["LUT"], "LUTRAM_cells": n_ram, "LUT_total": t["LUT"] + ram_luts, "FF": t["FF"],
            "CARRY4": t["CARRY"], "DSP": t["DSP"], "BRAM": t["BRAM"], "MUXF": t["MUXF"],
            "logic_depth": r["logic_depth"], "yosys_seconds": round(time.perf_counter() - t0, 1),
            "fits_pynq_z2": t["LUT"] + ram_luts <= PYNQ_LUTS}
    cached.write_text(json.dumps({"key": key, "result": res}, indent=1) + "\n")
    return res


def cosim(net, design, raw: np.ndarray) -> dict:
    from rtl_sim.fast_sim import build, compare, simulate, bus_input_elements
    from qat.ir import golden

    fb = build(design)
    elems = bus_input_elements(design.manifest, raw, design.top)
    run = simulate(fb, elems, jobs=1)
    expected = np.asarray(golden.run(net, raw)[net.outputs[0]])
    c = compare(design.manifest, run.outputs, expected, run.extra_outputs)
    return {"images": len(raw), "bit_exact": c["exact_vectors"], "mismatches": c["mismatches"],
            "harness_clocks": run.cycles, "clocks_per_image_measured": round(run.cycles / len(raw), 1),
            "build_seconds": round(fb.build_seconds, 1), "sim_seconds": round(run.seconds, 2),
            "outputs": run.outputs}


def model_mnist():
    from bench.mnist_cnn import MODEL, mnist
    from qat.importers.from_qkeras import convert_file
    from qat.importers.input_quant import quantize_real

    net = convert_file(str(MODEL))
    _, _, xb, yb = mnist()
    return net, quantize_real(net.inputs[0], xb[:1000]), yb[:1000]


def _agree(module, net, x) -> dict:
    """Golden vs Brevitas on ``x`` (qat.importers.from_brevitas.agreement): exact images and outputs."""
    from qat.importers.from_brevitas import agreement

    a = agreement(module, net, x)
    return {"images": a["vectors"], "exact_images": a["vectors"] - len(a["mismatch_inputs"]),
            "outputs": a["outputs"], "equal_outputs": a["equal"], "mismatch_rate": a["mismatch_rate"],
            "max_diff_steps": a["max_diff_steps"], "argmax_agreement": a["argmax_agreement"]}


def model_mnist_brevitas():
    """The Brevitas MNIST CNN (bench/mnist_cnn_brevitas.py:trained), imported from the module; also exported
    to a QONNX file by Brevitas and imported from that file: golden == Brevitas on all 5,000 images for
    both, and both networks' golden outputs identical."""
    import tempfile

    from brevitas.export import export_qonnx
    import torch
    from bench.mnist_cnn_brevitas import INPUT_SHAPE, SPEC, mnist_nchw, trained
    from qat.importers.convert import convert_model
    from qat.importers.input_quant import framework_to_network_layout, quantize_real
    from qat.ir import golden
    from qat.recipes.brevitas_recipes import evaluate

    m = trained()
    xa, ya, xb, yb = mnist_nchw()
    t0 = time.perf_counter()
    net = convert_model(SPEC, input_shape=INPUT_SHAPE)
    import_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        onnx_path = Path(d) / "mnist_cnn_brevitas.onnx"
        with torch.no_grad():
            export_qonnx(trained(), input_t=torch.zeros((1,) + INPUT_SHAPE), export_path=str(onnx_path))
        net_q = convert_model(onnx_path)
    x_all = np.concatenate([xb, xa])
    raw_all = quantize_real(net.inputs[0], framework_to_network_layout(net, x_all))
    same = np.array_equal(golden.run(net, raw_all)[net.outputs[0]], golden.run(net_q, raw_all)[net_q.outputs[0]])
    extra = {"framework": "brevitas", "framework_accuracy": round(evaluate(m, xb, yb), 4),
             "import_seconds": round(import_s, 1),
             "golden_vs_brevitas": {"module_import": _agree(m, net, x_all), "qonnx_file_import": _agree(m, net_q, x_all),
                                    "qonnx_file_golden_identical": bool(same)}}
    return net, raw_all[:1000], yb[:1000], extra


def model_econ():
    from bench.models import test_inputs
    from qat.importers.from_qkeras import convert_file
    from qat.importers.input_quant import quantize_real

    net = convert_file(str(ROOT / "bench" / "models" / "econt_encoder.h5"))
    return net, quantize_real(net.inputs[0], test_inputs("econt_encoder", 1000)), None


def run_model(name: str, loader, unrolled: bool) -> dict:
    from hls.rtl.verilog import generate

    net, raw, labels, *extra = loader()  # extra: a dict of model facts for the row (optional)
    t0, c0 = time.perf_counter(), time.process_time()
    d = generate(net, io="stream")
    gen_s, gen_cpu = time.perf_counter() - t0, time.process_time() - c0
    st = d.manifest["stream"]
    res = {"model": name, "io": "stream", "generate_seconds": round(gen_s, 2), "generate_cpu_seconds": round(gen_cpu, 2), "beats_in": st["in_beats"],
           "beat_in_elements": st["in_beat_elements"], "beats_out": st["out_beats"],
           "clocks_per_image": st["clocks_per_image"], "latency": st["latency"]}
    if extra:
        res.update(extra[0])
    c = cosim(net, d, raw)
    outs = c.pop("outputs")
    res["cosim"] = c
    if labels is not None:
        res["rtl_accuracy"] = round(float(np.mean(np.argmax(outs, axis=1) == labels)), 4)
    res["synth"] = synth(d, f"{name}_stream")
    rows = [res]
    if unrolled:
        t0 = time.perf_counter()
        du = generate(net)
        rows.append({"model": name, "io": "parallel", "generate_seconds": round(time.perf_counter() - t0, 2),
                     "clocks_per_image": 1, "latency": du.latency, "synth": synth(du, f"{name}_parallel")})
    return rows


def table(rows: list[dict]) -> str:
    head = ("| model | io | LUT (logic + LUTRAM) | LUTRAM cells | FF | CARRY4 | DSP | BRAM | clocks / image | latency "
            "(clocks) | RTL generation, CPU (wall) s | bit-exact (fast harness) | Yosys (s) |\n"
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|\n")
    out = []
    for r in rows:
        s = r["synth"]
        c = r.get("cosim")
        exact = f"{c['bit_exact']}/{c['images']}" if c else "-"
        out.append(f"| {r['model']} | {r['io']} | {s['LUT_total']} | {s['LUTRAM_cells']} | {s['FF']} | {s['CARRY4']} | "
                   f"{s['DSP']} | {s['BRAM']} | {r['clocks_per_image']} | {r['latency']} | "
                   f"{r.get('generate_cpu_seconds', '-')} ({r['generate_seconds']}) | "
                   f"{exact} | {s['yosys_seconds']} |")
    return head + "\n".join(out) + "\n"


def _unrolled_from_make_bench() -> dict | None:
    """The unrolled ECON-T encoder's Yosys figures from `make bench` (bench/results/results.json)."""
    p = OUT / "results.json"
    if not p.exists():
        return None
    doc = json.loads(p.read_text())
    try:
        q = doc["models"]["econt_encoder"]["qrtl"]
        env = doc.get("environment", {})
        return {"LUT": q["synth"]["LUT"], "FF": q["synth"]["FF"], "latency": q["latency_cycles"],
                "when": f"{env.get('date_utc', 'date not recorded')} UTC, commit {env.get('git_commit', '?')}"}
    except (KeyError, TypeError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-unrolled", action="store_true", help="skip the unrolled ECON-T synthesis (~5 min)")
    ap.add_argument("--models", default="mnist_cnn,mnist_cnn_brevitas,econt_encoder")
    args = ap.parse_args()
    t0 = time.perf_counter()
    loaders = {"mnist_cnn": (model_mnist, False), "mnist_cnn_brevitas": (model_mnist_brevitas, False),
               "econt_encoder": (model_econ, not args.no_unrolled)}
    rows = []
    for name in args.models.split(","):
        loader, unrolled = loaders[name]
        rows += run_model(name, loader, unrolled)
        print(json.dumps(rows[-1] if not unrolled else rows[-2:], default=str)[:2000], flush=True)
    if (OUT / "streaming.json").exists():  # keep the rows of models not run this time
        done = {r["model"] for r in rows}
        rows += [r for r in json.loads((OUT / "streaming.json").read_text())["rows"] if r["model"] not in done]
        rows.sort(key=lambda r: (list(loaders).index(r["model"]), r["io"] != "stream"))
    info = json.loads((ROOT / "bench" / "models" / "mnist_cnn.json").read_text())
    meta = run_meta(untracked=False)  # tracked files with uncommitted changes: the generator the figures came from
    doc = {"rows": rows, "mnist_cnn_keras_accuracy": info["test_accuracy"], "board": "pynq-z2 (xc7z020)",
           "lut_budget": PYNQ_LUTS, "commit": meta["git_commit"], "uncommitted": meta["git_dirty_paths"],
           "cpus": meta["cpus"], "python": meta["python"], "load_average": load_averages(),
           "total_seconds": round(time.perf_counter() - t0, 1), "date_utc": meta["date_utc"] + " UTC"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "streaming.json").write_text(json.dumps(doc, indent=1) + "\n")
    mn = next((r for r in rows if r["model"] == "mnist_cnn"), None)
    md = ["# Streaming RTL (`--io stream`, issue #12)\n\n",
          f"Generated by `make bench-stream` (`.venv/bin/python bench/streaming.py`) on {doc['date_utc']}, "
          f"{doc['cpus']} CPUs, qrtl commit {doc['commit']}"
          f"{' (uncommitted changes: ' + ', '.join(doc['uncommitted']) + ')' if doc['uncommitted'] else ''}, load average {doc['load_average']}; "
          f"total {doc['total_seconds']} s. Yosys `synth_xilinx -family xc7` (PYNQ-Z2, xc7z020: "
          f"{PYNQ_LUTS} LUTs, 220 DSP48E1); LUT = LUT cells + the LUTs of distributed-RAM cells (line buffers); "
          f"Yosys maps the flatten+dense stage's C*O small multipliers to DSP48s. RTL generation: CPU time of "
          f"the generating process (wall time in parentheses: the machine was shared).\n\n",
          table(rows)]
    if mn:
        md.append(f"\nMNIST CNN (bench/models/mnist_cnn.h5: 28x28x1 -> QConv2D 16@3x3 -> MaxPool 2 -> QConv2D 16@3x3 "
                  f"-> MaxPool 2 -> Flatten -> QDense 10, 6-bit): Keras accuracy {info['test_accuracy']} on the 1,000 "
                  f"held-out images, RTL argmax accuracy {mn.get('rtl_accuracy')} on the same images; "
                  f"{mn['clocks_per_image']} clocks per image (one input pixel per clock), target <= 1,000; "
                  f"LUTs {mn['synth']['LUT_total']} of {PYNQ_LUTS}.\n")
    mb = next((r for r in rows if r["model"] == "mnist_cnn_brevitas"), None)
    if mb:
        ag = mb["golden_vs_brevitas"]
        md.append(f"\nBrevitas MNIST CNN (`bench/mnist_cnn_brevitas.py:trained`, state_dict bench/models/"
                  f"mnist_cnn_brevitas.pt: the recipes' `cnn` with the po2_int6 preset, unsigned 6-bit input "
                  f"QuantIdentity -> QuantConv2d 16@3x3 pad 1 -> QuantReLU 6-bit -> MaxPool 2 -> QuantConv2d 16@3x3 "
                  f"pad 1 -> QuantReLU 6-bit -> MaxPool 2 -> Flatten -> QuantLinear 10, 6-bit power-of-two "
                  f"scales): Brevitas accuracy {mb['framework_accuracy']} on the same 1,000 held-out images, RTL "
                  f"argmax accuracy {mb.get('rtl_accuracy')}; golden == Brevitas (outputs in output steps) on "
                  f"{ag['module_import']['exact_images']}/{ag['module_import']['images']} images imported from the "
                  f"module and {ag['qonnx_file_import']['exact_images']}/{ag['qonnx_file_import']['images']} "
                  f"imported from Brevitas' QONNX file (golden outputs of the two imports identical: "
                  f"{ag['qonnx_file_golden_identical']}); {mb['clocks_per_image']} clocks per image (the 30x30 "
                  f"padded frame: pad pixels take a clock each), target <= 1,000; LUTs {mb['synth']['LUT_total']} "
                  f"of {PYNQ_LUTS}.\n")
    if not any(r["io"] == "parallel" for r in rows):
        prev = _unrolled_from_make_bench()
        if prev:
            md.append(f"\nECON-T encoder fully unrolled (`--io parallel`, one image per clock), from `make bench` "
                      f"(bench/results/results.json, same Yosys flow, {prev['when']}): {prev['LUT']} LUTs, "
                      f"{prev['FF']} FFs, latency {prev['latency']} clocks. Run without `--no-unrolled` to "
                      f"synthesize it here.\n")
    md.append("\nclocks / image: with the input always valid and the output always read (the manifest's "
              "`initiation_interval`, from the stages' handshake schedule; the harness's measured clocks per image "
              "are in streaming.json). latency: clocks from accepting an image's first pixel to its last output "
              "beat.\n")
    (OUT / "streaming.md").write_text("".join(md))
    print((OUT / "streaming.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
