"""qrtl against qonnx's executor on published QONNX files (fastmachinelearning/qonnx_model_zoo).

    .venv/bin/python bench/qonnx_zoo.py DIR [-n 10000] [--cosim 200]

DIR holds the zoo's files (not shipped with qrtl): TFC_1W1A.onnx, TFC_1W2A.onnx, TFC_2W2A.onnx,
qkeras_jettagging.onnx and optionally unsw_nb15-mlp-w2a2.onnx, kwsmlp_w3a3.onnx.  For each, qrtl
converts the file (logits and --output argmax), runs the golden model (+ the output conversion) and
qonnx.core.onnx_exec.execute_onnx on the same inputs, and counts:

* integer outputs equal to the reference's last integer tensor divided by its step ("grid"),
* final outputs (after the float output conversion) equal in float32 ("final"),
* argmax of the --output argmax network equal to the reference's argmax ("argmax"),
* a co-simulation of the first ``--cosim`` inputs' raw integers (Verilator).

The reference runs the cleaned graph with the batch axis opened (Reshape [1, -1] -> [-1, n]) so it
takes 1,000 inputs per call; the first 100 inputs are also run one by one on the file as published
to show that this changes nothing.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ref_model(path: Path, batch: int):
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    from qat.importers.from_qonnx import qonnx_clean

    m = qonnx_clean(onnx.load(str(path)))
    for vi in list(m.graph.input) + list(m.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    del m.graph.value_info[:]
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Reshape" and n.input[1] in inits:
            shp = onnx.numpy_helper.to_array(inits[n.input[1]]).copy()
            if shp[0] == 1:
                shp[0] = -1
                shp[1:] = np.where(shp[1:] == -1, 0, shp[1:])
                if (shp[1:] == 0).all() and len(shp) == 2:
                    shp[1] = int(np.prod([d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1:]))
                inits[n.input[1]].CopyFrom(onnx.numpy_helper.from_array(shp.astype(np.int64), n.input[1]))
    from qonnx.transformation.infer_shapes import InferShapes

    return ModelWrapper(m).transform(InferShapes())


def _run_ref(model, x: np.ndarray, tap: str | None):
    from qonnx.core.onnx_exec import execute_onnx

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    res = execute_onnx(model, {iname: x.astype(np.float32)}, return_full_exec_context=tap is not None)
    return res[oname], (res[tap] if tap else res[oname])


def inputs(name: str, n: int, rng) -> np.ndarray:
    if name.startswith("TFC"):
        from scipy.ndimage import zoom
        from sklearn.datasets import load_digits

        d = load_digits().images / 16.0  # 8x8 -> 28x28 digits, plus random uint8 images
        dig = np.clip(np.stack([zoom(im, 3.5, order=1) for im in d]), 0, 1)
        dig = np.round(dig * 255) / 255.0
        k = min(len(dig), n // 2)
        rnd = rng.integers(0, 256, size=(n - k, 28, 28)) / 255.0
        return np.concatenate([dig[:k], rnd])[:, None].astype(np.float32)
    if name.startswith("qkeras_jet"):  # standardized features on the fixed<16,6> grid
        return (np.round(rng.normal(0, 2, size=(n, 16)) * 1024) / 1024).clip(-32, 32 - 2 ** -10).astype(np.float32)
    if name.startswith("unsw"):  # binary features in {-1, +1}
        return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n, 600))
    if name.startswith("kws"):
        return rng.normal(0, 40, size=(n, 1, 10, 49)).astype(np.float32)
    raise ValueError(name)


INPUT_TYPES = {"qkeras_jettagging": "fixed<16,6>", "unsw_nb15-mlp-w2a2": "ufixed<1,1>"}


def measure(path: Path, n: int, n_cosim: int, seed: int = 0) -> dict:
    from qat.importers.convert import convert_model
    from qat.importers.float_steps import apply_output_conversion
    from qat.importers.input_quant import framework_to_network_layout, quantize_real
    from qat.ir import golden

    name = path.stem
    it = INPUT_TYPES.get(name)
    t0 = time.perf_counter()
    net = convert_model(path, input_type=it)
    net_am = convert_model(path, input_type=it, output="argmax")
    t_conv = time.perf_counter() - t0
    x = inputs(name, n, np.random.default_rng(seed))
    raw = quantize_real(net.inputs[0], framework_to_network_layout(net, x))
    y_int = np.asarray(golden.run(net, raw)[net.outputs[0]], dtype=np.int64)
    am = np.asarray(golden.run(net_am, raw)[net_am.outputs[0]], dtype=np.int64)[:, 0]
    y = golden.dequantize(net.tensor_types()[net.outputs[0]], y_int)
    y_fin = apply_output_conversion(net, y)
    conv = net.meta.get("output_conversion")
    # the reference's tensor where the integer network ends (before the output conversion)
    ref = _ref_model(path, 1000)
    tap = None
    if conv:
        tap = conv["onnx_input"]
    elif ref.graph.node[-1].op_type == "Softmax":
        tap = ref.graph.node[-1].input[0]
    outs, taps = [], []
    for i in range(0, n, 1000):
        xb = x[i:i + 1000]
        if len(xb) < 1000:
            xb = np.concatenate([xb, np.zeros((1000 - len(xb),) + xb.shape[1:], np.float32)])
        o, t = _run_ref(ref, xb, tap)
        outs.append(o[:len(x[i:i + 1000])]), taps.append(t[:len(x[i:i + 1000])])
    r_out, r_tap = np.concatenate(outs), np.concatenate(taps)
    # the published file, one input at a time, agrees with the batched reference
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    from qat.importers.from_qonnx import qonnx_clean

    single = ModelWrapper(qonnx_clean(onnx.load(str(path))))
    same_single = all(np.array_equal(_run_ref(single, x[i:i + 1], None)[0][0], r_out[i]) for i in range(100))
    step = np.broadcast_to(np.asarray(net.tensor_types()[net.outputs[0]].scale, dtype=np.float64),
                           y_int.shape[-1:])
    from qat.ir.types import unit_scale

    step = np.broadcast_to(unit_scale(net.tensor_types()[net.outputs[0]]), y_int.shape[-1:])
    grid = r_tap.astype(np.float64) / step
    on_grid = bool(np.all(grid == np.round(grid)))
    eq_grid = np.all(np.round(grid).astype(np.int64) == y_int, axis=-1)
    eq_fin = np.all(np.asarray(y_fin, dtype=np.float32) == r_out.astype(np.float32), axis=-1)
    if r_out.shape[-1] > 1:
        r_am = np.argmax(r_out, axis=-1)
    else:  # a single output (sign): its value is the class
        r_am = None
    res = {"model": name, "n": n, "convert_s": round(t_conv, 2), "reference_on_grid": on_grid,
           "grid_equal": float(eq_grid.mean()), "final_equal": float(eq_fin.mean()) if tap is None or conv else None,
           "argmax_equal": None if r_am is None else float((am == r_am).mean()),
           "single_vs_batched_reference": same_single, "input_type": it,
           "notes": [n_ for n_ in net.notes if "conversion" in n_ or "input" in n_][:3]}
    if n_cosim:
        import tempfile

        from rtl_sim.cosim import run_cosim

        with tempfile.TemporaryDirectory() as work:
            c = run_cosim(net_am, raw[:n_cosim], Path(work))
            res["cosim"] = c.describe().splitlines()[0]
            res["cosim_ok"] = bool(c.ok)
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--cosim", type=int, default=200)
    ap.add_argument("--models", default="TFC_1W1A,TFC_1W2A,TFC_2W2A,qkeras_jettagging,unsw_nb15-mlp-w2a2,kwsmlp_w3a3")
    a = ap.parse_args()
    import json

    for m in a.models.split(","):
        p = Path(a.dir) / f"{m}.onnx"
        if p.exists():
            print(json.dumps(measure(p, a.n, a.cosim)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
