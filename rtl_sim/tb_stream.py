"""cocotb protocol test of a streaming top (hls.rtl.stream, ``--io stream``).

Called by rtl_sim.tb_network for designs whose manifest says ``io: stream``.  Each input
vector is cut into its pixel beats (beat k = bus bits [k*W +: W]); the beats are offered in
order with random valid gaps, ``out_ready`` is dropped at random (back-pressure), a beat
moves only on a rising edge with valid & ready, and the output beats of each image are
joined again and compared with the golden model.  Writes ``result.json`` as tb_network does.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hls.rtl.minifloat_code import bus_view, mismatch_entry
from hls.rtl.verilog import unpack_bus


def _read(handle) -> int:
    return int(handle.value.to_unsigned()) if hasattr(handle.value, "to_unsigned") else int(handle.value)


async def stream_images(dut, job: dict, job_dir: Path) -> dict:
    man = job["manifest"]
    st, inp, out = man["stream"], man["input"], man["output"]
    rng = random.Random(job.get("seed", 1))
    gap = float(job.get("gap_probability", 0.2))
    bw_in, bw_out = int(inp["width"]), int(out["width"])
    nb_in, nb_out = int(st["in_beats"]), int(st["out_beats"])
    vectors = [int(v, 16) for v in job["inputs"]]
    beats = [(v >> (k * bw_in)) & ((1 << bw_in) - 1) for v in vectors for k in range(nb_in)]
    expected = np.load(job_dir / "expected.npy", allow_pickle=False)
    want = len(vectors) * nb_out

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    dut.out_ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    got: list[int] = []
    i = cycles = stalls = 0
    limit = 4 * (len(beats) + len(vectors) * int(st["clocks_per_image"])) + 1000
    tail = int(st["clocks_per_image"]) + 8  # idle clocks after the last expected beat: no extra beats
    while cycles < limit and tail > 0:
        if len(got) >= want:
            tail -= 1
        offer = i < len(beats) and rng.random() >= gap
        take = len(got) >= want or rng.random() >= gap  # random back-pressure while outputs are due
        dut.in_valid.value = int(offer)
        if offer:
            dut.in_data.value = beats[i]
        dut.out_ready.value = int(take)
        await ReadOnly()
        if offer:
            if _read(dut.in_ready):
                i += 1
            else:
                stalls += 1
        if take and _read(dut.out_valid):
            got.append(_read(dut.out_data))
        await FallingEdge(dut.clk)
        cycles += 1
    n_out = int(np.prod(out["shape"])) if out["shape"] else 1
    joined = [sum(got[v * nb_out + k] << (k * bw_out) for k in range(nb_out)) for v in range(min(len(got), want)
                                                                                          // nb_out)]
    got_raw = unpack_bus(joined, n_out, int(out["element_bits"]), bool(out["signed"]), bool(out["binary"]))
    exp = bus_view(out, expected.reshape(len(expected), -1))
    n = min(len(got_raw), len(exp))
    bad = [(v, k) for v in range(n) for k in range(exp.shape[1]) if int(got_raw[v, k]) != int(exp[v, k])]
    result = {"vectors": len(vectors), "exact_vectors": int(sum(1 for v in range(n) if np.array_equal(got_raw[v],
                                                                                                      exp[v]))),
              "mismatches": len({v for v, _ in bad}) + abs(len(got_raw) - len(exp)) + max(0, len(got) - want),
              "first_mismatch": None, "first_wrong_layer": None, "latency": int(man["latency"]),
              "outputs_seen": len(got), "input_stalls": stalls, "cycles": cycles, "phases": None}
    if bad:
        v, k = bad[0]
        result["first_mismatch"] = {"vector": v, "output_index": k,
                                    **mismatch_entry(out, int(exp[v, k]), int(got_raw[v, k]))}
    (job_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    assert result["mismatches"] == 0, f"stream: {result['mismatches']} mismatches, first {result['first_mismatch']}"
    return result
