"""cocotb testbench for a generated network top module.

Reads its job from ``$QRTL_COSIM_DIR/job.json`` (written by rtl_sim.cosim):
packed input bus values, the manifest, and the golden outputs.  Streams the
vectors back to back (one per clock) with random valid gaps, one reset in the
middle of the stream while a vector is in flight (that vector must vanish and
is sent again), and compares every output with the golden model.  Writes
``result.json`` next to the job.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from hls.verilog import unpack_bus


def _read(handle) -> int:
    return int(handle.value.to_unsigned()) if hasattr(handle.value, "to_unsigned") else int(handle.value)


@cocotb.test()
async def stream_vectors(dut):
    job_dir = Path(os.environ["QRTL_COSIM_DIR"])
    job = json.loads((job_dir / "job.json").read_text())
    inputs = [int(v, 16) for v in job["inputs"]]
    expected = np.load(job_dir / "expected.npy", allow_pickle=False)
    man = job["manifest"]
    latency = int(man["latency"])
    out = man["output"]
    n_out = int(np.prod(out["shape"])) if out["shape"] else 1
    rng = random.Random(job.get("seed", 1))
    gap_prob = float(job.get("gap_probability", 0.2))
    trace = job.get("trace_layers", False)
    layer_expect = {}
    if trace:
        data = np.load(job_dir / "layers.npz", allow_pickle=False)
        layer_expect = {k: data[k] for k in data.files}

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    got: list[int] = []
    layer_got: dict[str, list] = {k: [] for k in layer_expect}
    sent_at: list[int] = []  # falling-edge index at which each accepted vector was driven
    cycle = 0
    reset_at = len(inputs) // 2 if len(inputs) >= 4 else -1
    i = 0
    resets = 0
    history: list[dict] = []  # per falling edge: sampled layer outputs (when tracing)
    idle_tail = latency + 4
    while i < len(inputs) or idle_tail > 0:
        # sample what the last rising edge produced
        if _read(dut.out_valid):
            got.append(_read(dut.out_data))
        if trace:
            history.append({k: _read(getattr(dut, man["ops"][k]["instance"]).out) for k in layer_expect})
        if i >= len(inputs):
            dut.in_valid.value = 0
            idle_tail -= 1
        elif i == reset_at and resets == 0:
            # a vector enters, then reset hits while it is in flight (or, at latency 1, as it
            # enters): it must never come out, and is sent again afterwards
            dut.in_valid.value = 0
            for _ in range(latency + 1):  # drain: outputs already in flight must come out
                await FallingEdge(dut.clk)
                cycle += 1
                if _read(dut.out_valid):
                    got.append(_read(dut.out_data))
                if trace:
                    history.append({k: _read(getattr(dut, man["ops"][k]["instance"]).out) for k in layer_expect})
            dut.in_valid.value = 1
            dut.in_data.value = inputs[i]
            if latency >= 2:
                await FallingEdge(dut.clk)
                cycle += 1
                if _read(dut.out_valid):
                    got.append(_read(dut.out_data))
                if trace:
                    history.append({k: _read(getattr(dut, man["ops"][k]["instance"]).out) for k in layer_expect})
                dut.in_valid.value = 0
            dut.rst.value = 1
            await FallingEdge(dut.clk)
            cycle += 1
            dut.rst.value = 0
            dut.in_valid.value = 0
            resets += 1
            continue
        elif rng.random() < gap_prob:
            dut.in_valid.value = 0
        else:
            dut.in_valid.value = 1
            dut.in_data.value = inputs[i]
            sent_at.append(cycle)
            i += 1
        await FallingEdge(dut.clk)
        cycle += 1

    got_raw = unpack_bus(got, n_out, int(out["element_bits"]), bool(out["signed"]), bool(out["binary"]))
    exp = expected.reshape(len(expected), -1)
    result = {"vectors": len(inputs), "outputs_seen": len(got), "latency": latency, "resets": resets,
              "mismatches": 0, "first_mismatch": None, "first_wrong_layer": None}
    n = min(len(got_raw), len(exp))
    bad = [(v, k) for v in range(n) for k in range(exp.shape[1]) if int(got_raw[v, k]) != int(exp[v, k])]
    result["exact_vectors"] = int(sum(1 for v in range(n) if np.array_equal(got_raw[v], exp[v])))
    result["mismatches"] = len({v for v, _ in bad}) + abs(len(got_raw) - len(exp))
    if bad:
        v, k = bad[0]
        result["first_mismatch"] = {"vector": v, "output_index": k, "expected": int(exp[v, k]),
                                    "got": int(got_raw[v, k])}
    if trace and history:
        order = [k for k in man["ops"] if k in layer_expect]
        for v, t0 in enumerate(sent_at):
            for k in order:
                info = man["ops"][k]
                t = t0 + int(info["stage"])
                if t >= len(history) or history[t][k] is None:
                    continue
                shape_n = int(np.prod(layer_expect[k].shape[1:]))
                val = unpack_bus([history[t][k]], shape_n, int(info["element_bits"]), bool(info["signed"]),
                                 bool(info["binary"]))[0]
                if not np.array_equal(val, layer_expect[k][v].reshape(-1)):
                    result["first_wrong_layer"] = {"vector": v, "layer": k}
                    break
            if result["first_wrong_layer"]:
                break
    (job_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    assert result["mismatches"] == 0, f"{result['mismatches']} mismatching vectors, first: {result['first_mismatch']}"
