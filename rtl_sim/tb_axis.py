"""cocotb testbench for the AXI4-Stream wrapper (cocotbext-axi).

Sends the vectors as frames of 1-4 beats (one inference per beat) with
random source pauses, reads them back with random sink back-pressure, and
checks every beat against the golden model and that frame boundaries
(tlast) survive.  Job and result files as in tb_network.  With ``trace_layers``
every layer of the core (``u_core``) is compared too: the wrapper never stalls
the core, so a beat accepted at the rising edge after falling edge t0 shows
at layer stage s at falling edge t0 + s (a stage-0 layer at t0 itself).
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
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from hls.rtl.minifloat_code import bus_view, mismatch_entry
from hls.rtl.verilog import unpack_bus
from rtl_sim.tb_network import _peek


def _pauses(rng: random.Random, p: float):
    while True:
        yield 1 if rng.random() < p else 0


@cocotb.test()
async def axis_backpressure(dut):
    job_dir = Path(os.environ["QRTL_COSIM_DIR"])
    job = json.loads((job_dir / "job.json").read_text())
    inputs = [int(v, 16) for v in job["inputs"]]
    expected = np.load(job_dir / "expected.npy", allow_pickle=False)
    man = job["manifest"]
    out = man["output"]
    in_bytes = max(8, -(-int(man["input"]["width"]) // 8) * 8) // 8
    out_bytes = max(8, -(-int(out["width"]) // 8) * 8) // 8
    rng = random.Random(job.get("seed", 1))

    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, dut.aresetn, reset_active_level=False)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn, reset_active_level=False)
    source.set_pause_generator(_pauses(rng, 0.2))
    sink.set_pause_generator(_pauses(rng, float(job.get("backpressure", 0.5))))
    dut.aresetn.value = 0
    for _ in range(4):
        await RisingEdge(dut.aclk)
    dut.aresetn.value = 1
    await RisingEdge(dut.aclk)
    stalls = {"input": 0, "output": 0}  # cycles with tvalid high and tready low, per side

    async def count_stalls():
        while True:
            await RisingEdge(dut.aclk)
            if int(dut.s_axis_tvalid.value) and not int(dut.s_axis_tready.value):
                stalls["input"] += 1
            if int(dut.m_axis_tvalid.value) and not int(dut.m_axis_tready.value):
                stalls["output"] += 1

    cocotb.start_soon(count_stalls())

    layer_expect, history, accepted_at = {}, [], []
    if job.get("trace_layers", False):
        data = np.load(job_dir / "layers.npz", allow_pickle=False)
        layer_expect = {k: data[k] for k in data.files}

        async def monitor():  # per falling edge: the accept strobe and every layer's output
            while True:
                await FallingEdge(dut.aclk)
                if int(dut.u_core.in_valid.value):
                    accepted_at.append(len(history))
                history.append({k: _peek(getattr(dut.u_core, man["ops"][k]["instance"]).out) for k in layer_expect})

        cocotb.start_soon(monitor())

    frames = []
    i = 0
    while i < len(inputs):
        k = min(rng.randint(1, 4), len(inputs) - i)
        frames.append(k)
        data = b"".join(v.to_bytes(in_bytes, "little") for v in inputs[i:i + k])
        await source.send(AxiStreamFrame(data))
        i += k
    got = []
    lengths = []
    for _ in frames:
        f = await sink.recv()
        raw = bytes(f.tdata)
        beats = len(raw) // out_bytes
        lengths.append(beats)
        got += [int.from_bytes(raw[b * out_bytes:(b + 1) * out_bytes], "little") for b in range(beats)]
    n_out = int(np.prod(out["shape"])) if out["shape"] else 1
    got_raw = unpack_bus(got, n_out, int(out["element_bits"]), bool(out["signed"]), bool(out["binary"]))
    exp = bus_view(out, expected.reshape(len(expected), -1))  # minifloat outputs: compare codes
    bad = [v for v in range(min(len(exp), len(got_raw))) if not np.array_equal(got_raw[v], exp[v])]
    result = {"vectors": len(inputs), "outputs_seen": len(got), "latency": int(man["latency"]), "resets": 0,
              "exact_vectors": len(got_raw) - len(bad) if len(got_raw) == len(exp) else 0,
              "mismatches": len(bad) + abs(len(got_raw) - len(exp)) + (0 if lengths == frames else 1),
              "first_mismatch": None, "first_wrong_layer": None, "frames_ok": lengths == frames,
              "frames": len(frames), "input_stall_cycles": stalls["input"], "output_stall_cycles": stalls["output"]}
    if bad:
        v = bad[0]
        k = int(np.argmax(got_raw[v] != exp[v]))
        result["first_mismatch"] = {"vector": v, "output_index": k,
                                    **mismatch_entry(out, int(exp[v, k]), int(got_raw[v, k]))}
    for v, t0 in enumerate(accepted_at if layer_expect else []):
        for k in (k for k in man["ops"] if k in layer_expect):
            info = man["ops"][k]
            t = t0 + int(info["stage"])
            if t >= len(history):
                continue
            raw = history[t][k]
            n = int(np.prod(layer_expect[k].shape[1:]))
            val = None if raw is None else unpack_bus([raw], n, int(info["element_bits"]), bool(info["signed"]),
                                                      bool(info["binary"]))[0]
            if val is None or not np.array_equal(val, bus_view(info, layer_expect[k][v].reshape(-1))):
                result["first_wrong_layer"] = {"vector": v, "layer": k}
                break
        if result["first_wrong_layer"]:
            break
    result["traced_vectors"] = len(accepted_at) if layer_expect else 0
    (job_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    assert result["mismatches"] == 0 and result["first_wrong_layer"] is None, result
