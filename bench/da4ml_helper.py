"""Run inside bench/.venv-da4ml (numpy >= 2, da4ml 0.6): integer network -> da4ml Verilog.

Reads ``spec.json`` + ``arrays.npz`` written by run_bench.py from a qrtl integer
network (weights, biases, requantization shifts, saturation bounds, conv
geometry; all integers) and rebuilds the *same integer function* with da4ml's
symbolic tracer, then lets da4ml optimise every constant-matrix-vector multiply
(adder graphs with common-subexpression elimination) and emit pipelined
Verilog.  Every tensor is traced in raw-integer units (fraction bits 0); scales
are powers of two, so they are wiring in both generators.

* dense:  ``x @ W + b`` (one da4ml CMVM)
* conv2d: one CMVM per output position over the in-bounds taps (im2col;
          padded taps are constant zero and dropped, as qrtl does)
* requant (multiplier 1, right shift s, saturate to [lo, hi]):
          ``half_even``: q = floor(a / 2^s); inc = a[s-1] & (|a[s-2:0] | a[s]);
          y = sat(q + inc) -- the same rounding as QKeras (tf.round) and as qrtl;
          ``half_up`` (da4ml's native RND) is available with --rounding half_up.
* reshape: free.

The traced network is then evaluated with da4ml's own interpreter
(``CombLogic.predict``) on the test vectors and compared with qrtl's golden
outputs, so the comparison is known to be between equal functions.

Usage: python da4ml_helper.py WORK_DIR --stages N  (N = pipeline stages wanted)
Writes WORK_DIR/rtl (da4ml's project), WORK_DIR/da4ml_result.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _bits_field(v, lo_bit: int, nbits: int):
    """Unsigned field v[lo_bit + nbits - 1 : lo_bit] of an integer-valued variable (pure wiring)."""
    return (v * 2.0 ** -lo_bit).quantize(0, nbits, 0, "WRAP", "TRN")


def _requant(v, shift: int, lo: int, hi: int, rounding: str):
    k, i = _kif_for(lo, hi)
    if shift <= 0:
        return (v * 2.0 ** -shift).quantize(k, i, 0, "SAT", "TRN")
    if rounding == "half_up":
        return (v * 2.0 ** -shift).quantize(k, i, 0, "SAT", "RND")
    if rounding != "half_even":
        raise SystemExit(f"da4ml_helper: rounding {rounding!r} not expressed")
    kq, iq, _ = v.kif
    q = (v * 2.0 ** -shift).quantize(kq, max(iq - shift, 1), 0, "WRAP", "TRN")  # floor(v / 2^s)
    rbit = _bits_field(v, shift - 1, 1)
    lsb = _bits_field(v, shift, 1)
    if shift >= 2:
        sticky = _bits_field(v, 0, shift - 1).unary_bit_op("any")
        inc = rbit & (sticky | lsb)
    else:
        inc = rbit & lsb
    return (q + inc).quantize(k, i, 0, "SAT", "TRN")


def _kif_for(lo: int, hi: int) -> tuple[int, int]:
    if lo < 0:
        i = max((hi + 1 - 1).bit_length(), (-lo - 1).bit_length())
        if lo != -(1 << i) or hi != (1 << i) - 1:
            raise SystemExit(f"da4ml_helper: saturation bounds [{lo}, {hi}] are not a full signed range")
        return 1, i
    i = hi.bit_length()
    if lo != 0 or hi != (1 << i) - 1:
        raise SystemExit(f"da4ml_helper: saturation bounds [{lo}, {hi}] are not a full unsigned range")
    return 0, i


def _pad_amounts(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(pad before, output size), TensorFlow's rule."""
    if padding == "valid":
        return 0, (size - kernel) // stride + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, out


def build(spec: dict, arrays, rounding: str, hwconf):
    from da4ml.trace import FixedVariableArray, FixedVariableArrayInput

    inp_spec = spec["input"]
    shape = tuple(inp_spec["shape"])
    n_in = int(np.prod(shape))
    inp = FixedVariableArrayInput((n_in,), hwconf=hwconf, solver_options={"hard_dc": spec.get("hard_dc", 2)})
    k_in = 1 if inp_spec["signed"] else 0
    x = inp.quantize(k_in, inp_spec["bits"] - k_in, 0)
    env = {inp_spec["name"]: x.reshape(shape)}
    for op in spec["ops"]:
        src = env[op["input"]]
        kind = op["kind"]
        if kind == "dense":
            w = arrays[op["weight"]].astype(np.float64)
            b = arrays[op["bias"]].astype(np.float64)
            y = src.reshape((w.shape[0],)) @ w + b
        elif kind == "conv2d":
            w = arrays[op["weight"]].astype(np.float64)  # (KH, KW, Ci, Co)
            b = arrays[op["bias"]].astype(np.float64)
            h, wd, ci = src.shape
            kh, kw, _, co = w.shape
            sh, sw = op["strides"]
            pt, oh = _pad_amounts(h, kh, sh, op["padding"])
            pl, ow = _pad_amounts(wd, kw, sw, op["padding"])
            rows = []
            for yy in range(oh):
                for xx in range(ow):
                    taps, wrows = [], []
                    for a in range(kh):
                        iy = yy * sh + a - pt
                        if not 0 <= iy < h:
                            continue
                        for bb in range(kw):
                            ix = xx * sw + bb - pl
                            if not 0 <= ix < wd:
                                continue
                            for c in range(ci):
                                taps.append(src._vars[iy, ix, c])
                                wrows.append(w[a, bb, c])
                    patch = FixedVariableArray(np.array(taps, dtype=object), src.solver_options, hwconf=src.hwconf)
                    rows.append((patch @ np.array(wrows) + b)._vars)
            y = FixedVariableArray(np.array(rows, dtype=object).reshape(oh, ow, co), src.solver_options,
                                   hwconf=src.hwconf)
        elif kind == "requant":
            flat = src.ravel()
            c = op["channels"]
            vs = [_requant(v, int(op["shift"][j % c]), int(op["lo"]), int(op["hi"]), rounding)
                  for j, v in enumerate(flat._vars)]
            y = FixedVariableArray(np.array(vs, dtype=object), src.solver_options, hwconf=src.hwconf).reshape(
                src.shape)
        elif kind == "reshape":
            y = src.reshape(tuple(op["shape"]))
        else:
            raise SystemExit(f"da4ml_helper: op kind {kind!r} not expressed")
        env[op["name"]] = y
    return inp, env[spec["output"]].ravel()


class _Slow(Exception):
    pass


def pipeline_for_stages(comb, stages: int):
    """A pipeline of exactly ``stages`` stages when one is found: tries latency cutoffs
    total/stages * (1 + k/20), k = 0, 1, ... and takes the first with at most ``stages`` stages.
    (Some cutoffs send da4ml 0.6's retiming into a very long search; each try gets 20 s.)"""
    import signal

    from da4ml.trace import to_pipeline

    def _alarm(signum, frame):
        raise _Slow()

    total = float(comb.latency[1])
    old = signal.signal(signal.SIGALRM, _alarm)
    tried = []
    try:
        for k in range(0, 60):
            cutoff = total / stages * (1 + k / 20)
            signal.alarm(20)
            try:
                p = to_pipeline(comb, cutoff, verbose=False)
            except (_Slow, AssertionError) as exc:
                tried.append((round(cutoff, 3), type(exc).__name__))
                continue
            finally:
                signal.alarm(0)
            tried.append((round(cutoff, 3), len(p.solutions)))
            if len(p.solutions) <= stages:
                return p, cutoff, tried
    finally:
        signal.signal(signal.SIGALRM, old)
    raise SystemExit(f"da4ml_helper: no cutoff gives {stages} stages: {tried}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--stages", type=int, required=True, help="pipeline stages (da4ml latency = stages + 1 "
                                                                "cycles: it registers the input too)")
    ap.add_argument("--rounding", choices=("qkeras", "half_up"), default="qkeras")
    ap.add_argument("--name", default="da4ml_top")
    ap.add_argument("--validate-rtl", action="store_true",
                    help="also build da4ml's own Verilator harness of the Verilog and compare its outputs "
                         "(slow: minutes of C++ compilation per design)")
    args = ap.parse_args()

    import da4ml
    from da4ml.codegen import VerilogModel
    from da4ml.trace import HWConfig, comb_trace

    work = args.work
    spec = json.loads((work / "spec.json").read_text())
    arrays = np.load(work / "arrays.npz")
    t0 = time.perf_counter()
    inp, out = build(spec, arrays, "half_up" if args.rounding == "half_up" else "half_even", HWConfig(1, -1, -1))
    comb = comb_trace(inp, out)
    t_trace = time.perf_counter() - t0
    pipe, cutoff, tried = pipeline_for_stages(comb, args.stages)
    t_gen = time.perf_counter() - t0
    # for reference only: da4ml's own cost estimate with its native rounding (half up, not QKeras's)
    other = "half_up" if args.rounding == "qkeras" else "half_even"
    inp2, out2 = build(spec, arrays, other, HWConfig(1, -1, -1))
    cost_other = float(comb_trace(inp2, out2).cost)
    t0 = time.perf_counter()
    rtl_dir = work / "rtl"
    model = VerilogModel(pipe, args.name, rtl_dir, latency_cutoff=-1, print_latency=False)
    model.write()
    t_total = t_gen + time.perf_counter() - t0

    x = arrays["test_inputs"].reshape(len(arrays["test_inputs"]), -1).astype(np.float64)
    expected = arrays["test_expected"].reshape(len(x), -1)
    got = comb.predict(x, n_threads=1)
    got_p = x
    for stage in pipe.solutions:  # the pipelined form, stage by stage
        got_p = stage.predict(got_p, n_threads=1)
    exact = np.all(got == expected, axis=1) & np.all(got_p == expected, axis=1)
    src = sorted(str(p.relative_to(rtl_dir)) for p in (rtl_dir / "src").glob("*.v"))
    res = {
        "da4ml_version": da4ml.__version__, "numpy_version": np.__version__,
        "rounding": args.rounding, "stages": len(pipe.solutions),
        "latency_cycles": len(pipe.solutions) + 1, "latency_cutoff": cutoff, "cutoffs_tried": tried,
        "comb_latency_units": float(comb.latency[1]), "estimated_cost": float(comb.cost),
        f"estimated_cost_with_{other}_rounding": cost_other,
        "reg_bits": int(pipe.reg_bits), "generate_seconds": round(t_total, 3), "trace_seconds": round(t_trace, 3),
        "top": args.name, "verilog_files": src, "test_vectors": int(len(x)),
        "bit_exact_vectors": int(exact.sum()),
    }
    if args.validate_rtl:
        t = time.perf_counter()
        model._compile(openmp=False, nproc=2)
        res["rtl_validation_compile_seconds"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        y_rtl = np.asarray(model.predict(x, n_threads=1)).reshape(len(x), -1)
        dt = time.perf_counter() - t
        res["rtl_validation_bit_exact_vectors"] = int(np.all(y_rtl == expected, axis=1).sum())
        res["rtl_validation_inferences_per_second"] = round(len(x) / dt, 1)
    (work / "da4ml_result.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
