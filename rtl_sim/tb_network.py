"""cocotb testbench for a generated network top module.

Reads its job from ``$QRTL_COSIM_DIR/job.json`` (written by rtl_sim.cosim):
packed input bus values, the manifest, and the golden outputs.  Streams the
vectors back to back (one per clock) with random valid gaps, one reset in the
middle of the stream while a vector is in flight (that vector must vanish and
is sent again), and compares every output with the golden model.  A top with
``in_ready`` (manifest ``in_ready``, initiation interval > 1) gets each vector
held on the bus until in_ready is high, and random data while in_valid is low.  Writes
``result.json`` next to the job.  Minifloat tensors (manifest key
``minifloat``) are compared as bus codes (hls.rtl.minifloat_code); a mismatch
reports the decoded raw values and both codes.

With ``phases`` in the job (reconfigurable-weight designs), each phase first
shifts a weight bitstream into the design through ``cfg_en``/``cfg_sdi``,
pulses ``cfg_commit``, optionally flips bits of weight-register copies
(fault injection), then streams the vectors against that phase's golden
outputs.  A phase marked ``expect_mismatch`` (a fault in a design without
voting) passes only if the fault is visible.
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

from hls.rtl.minifloat_code import bus_view, mismatch_entry
from hls.rtl.verilog import unpack_bus


def _read(handle) -> int:
    return int(handle.value.to_unsigned()) if hasattr(handle.value, "to_unsigned") else int(handle.value)


def _peek(handle) -> int | None:
    """A layer output, or None while it holds X/Z (registers before the first vector
    reaches them: 4-state simulators such as Icarus start them unknown)."""
    v = handle.value
    if hasattr(v, "is_resolvable") and not v.is_resolvable:
        return None
    return _read(handle)


async def load_config(dut, bits_hex: str, n_bits: int, before_commit: list | None = None) -> None:
    """Shift a weight bitstream in (first bit = most significant of the hex word); the
    ``before_commit`` faults hit the shadow registers between the last bit and the commit."""
    value = int(bits_hex, 16) if n_bits else 0
    dut.cfg_en.value = 1
    for k in range(n_bits - 1, -1, -1):
        dut.cfg_sdi.value = (value >> k) & 1
        await FallingEdge(dut.clk)
    dut.cfg_en.value = 0
    dut.cfg_sdi.value = 0
    inject(dut, before_commit or [])
    dut.cfg_commit.value = 1
    await FallingEdge(dut.clk)
    dut.cfg_commit.value = 0


def inject(dut, faults: list[dict]) -> dict:
    """Flip bits of weight registers inside op instances: one write per register (writes
    are applied later in the time step, so a second read-modify-write would undo the first).
    Returns {(instance, register): (handle, value before)}."""
    masks: dict[tuple[str, str], int] = {}
    before = {}
    for f in faults:
        key = (f["instance"], f["register"])
        masks[key] = masks.get(key, 0) ^ (1 << int(f["bit"]))
    for (inst, name), mask in masks.items():
        reg = getattr(getattr(dut, inst), name)
        before[(inst, name)] = (reg, _read(reg))
        reg.value = before[(inst, name)][1] ^ mask
    return before


async def stream_phase(dut, inputs: list[int], expected: np.ndarray, man: dict, rng: random.Random,
                       gap_prob: float, layer_expect: dict) -> dict:
    latency = int(man["latency"])
    out = man["output"]
    n_out = int(np.prod(out["shape"])) if out["shape"] else 1
    trace = bool(layer_expect)
    got: list[int] = []
    sent_at: list[int] = []  # falling-edge index at which each accepted vector was driven
    history: list[dict] = []  # per falling edge: sampled layer outputs (when tracing)
    cycle = 0

    def sample() -> None:
        if _read(dut.out_valid):
            got.append(_read(dut.out_data))
        if trace:
            history.append({k: _peek(getattr(dut, man["ops"][k]["instance"]).out) for k in layer_expect})

    reset_at = len(inputs) // 2 if len(inputs) >= 4 else -1
    ready = bool(man.get("in_ready"))  # II > 1: in_valid is taken only while in_ready is high
    waiting = False  # a vector is offered and in_ready was low
    width = int(man["input"]["width"])
    i = 0
    resets = 0
    idle_tail = latency + 4
    while i < len(inputs) or idle_tail > 0:
        sample()  # what the last rising edge produced
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
                sample()
            dut.in_valid.value = 1
            dut.in_data.value = inputs[i]
            if latency >= 2:
                await FallingEdge(dut.clk)
                cycle += 1
                sample()
                dut.in_valid.value = 0
            dut.rst.value = 1
            await FallingEdge(dut.clk)
            cycle += 1
            dut.rst.value = 0
            dut.in_valid.value = 0
            resets += 1
            waiting = False  # an offered vector not yet taken is offered again after the reset
            continue
        elif ready and waiting:
            # II > 1: the offered vector is held until in_ready is high (it is taken at the next rising edge)
            if _read(dut.in_ready):
                sent_at.append(cycle)
                i += 1
                waiting = False
        elif rng.random() < gap_prob:
            dut.in_valid.value = 0
            if ready:  # what the bus carries while in_valid is low must not matter
                dut.in_data.value = rng.getrandbits(width)
        else:
            dut.in_valid.value = 1
            dut.in_data.value = inputs[i]
            if ready and not _read(dut.in_ready):
                waiting = True
            else:
                sent_at.append(cycle)
                i += 1
        await FallingEdge(dut.clk)
        cycle += 1

    got_raw = unpack_bus(got, n_out, int(out["element_bits"]), bool(out["signed"]), bool(out["binary"]))
    exp = bus_view(out, expected.reshape(len(expected), -1))  # minifloat outputs: compare codes
    result = {"vectors": len(inputs), "outputs_seen": len(got), "latency": latency, "resets": resets,
              "mismatches": 0, "first_mismatch": None, "first_wrong_layer": None, "_outputs": got_raw}
    n = min(len(got_raw), len(exp))
    bad = [(v, k) for v in range(n) for k in range(exp.shape[1]) if int(got_raw[v, k]) != int(exp[v, k])]
    result["exact_vectors"] = int(sum(1 for v in range(n) if np.array_equal(got_raw[v], exp[v])))
    result["mismatches"] = len({v for v, _ in bad}) + abs(len(got_raw) - len(exp))
    if bad:
        v, k = bad[0]
        result["first_mismatch"] = {"vector": v, "output_index": k,
                                    **mismatch_entry(out, int(exp[v, k]), int(got_raw[v, k]))}
    if trace and history:
        order = [k for k in man["ops"] if k in layer_expect]
        for v, t0 in enumerate(sent_at):
            for k in order:
                info = man["ops"][k]
                # sampled at falling edge t0 + stage: a registered output then shows what the rising
                # edge in between stored; a combinational op at stage 0 (a wiring op on the network
                # input, or any op with --pipeline none) shows the vector only from falling edge t0 + 1,
                # while in_data still holds it (sample() runs before the next vector is driven)
                t = t0 + max(int(info["stage"]), 1)
                if t >= len(history):
                    continue
                shape_n = int(np.prod(layer_expect[k].shape[1:]))
                raw = history[t][k]
                val = None if raw is None else unpack_bus([raw], shape_n, int(info["element_bits"]),
                                                          bool(info["signed"]), bool(info["binary"]))[0]
                if val is None or not np.array_equal(val, bus_view(info, layer_expect[k][v].reshape(-1))):
                    result["first_wrong_layer"] = {"vector": v, "layer": k}
                    break
            if result["first_wrong_layer"]:
                break
    return result


@cocotb.test()
async def stream_vectors(dut):
    job_dir = Path(os.environ["QRTL_COSIM_DIR"])
    job = json.loads((job_dir / "job.json").read_text())
    inputs = [int(v, 16) for v in job["inputs"]]
    man = job["manifest"]
    rng = random.Random(job.get("seed", 1))
    gap_prob = float(job.get("gap_probability", 0.2))
    if man.get("io") == "stream":  # a streaming top (hls.rtl.stream): pixels as beats, with back-pressure
        from rtl_sim.tb_stream import stream_images

        await stream_images(dut, job, job_dir)
        return
    layer_expect = {}
    if job.get("trace_layers", False):
        data = np.load(job_dir / "layers.npz", allow_pickle=False)
        layer_expect = {k: data[k] for k in data.files}

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    if "cfg" in man:
        dut.cfg_en.value = 0
        dut.cfg_sdi.value = 0
        dut.cfg_commit.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    phases = job.get("phases") or [{"expected": "expected.npy"}]
    results = []
    for ph in phases:
        if "config" in ph:
            await load_config(dut, ph["config"], int(man["cfg"]["bits"]),
                              [f for f in ph.get("faults", []) if f.get("before_commit")])
        before = inject(dut, [f for f in ph.get("faults", []) if not f.get("before_commit")])
        expected = np.load(job_dir / ph["expected"], allow_pickle=False)
        r = await stream_phase(dut, inputs, expected, man, rng, gap_prob, layer_expect if len(phases) == 1 else {})
        # the output bus elements in order (what rtl_sim.fast_sim's harness is compared with)
        np.save(job_dir / f"outputs_{len(results)}.npy", r.pop("_outputs"), allow_pickle=False)
        r["fault_bits_flipped"] = sum(bin(_read(reg) ^ v).count("1") for reg, v in before.values())
        r["name"] = ph.get("name", "vectors")
        r["expect_mismatch"] = bool(ph.get("expect_mismatch", False))
        results.append(r)
    failed = [r for r in results if (r["mismatches"] > 0) != r["expect_mismatch"]]
    plain = [r for r in results if not r["expect_mismatch"]]
    result = {"vectors": sum(r["vectors"] for r in plain), "exact_vectors": sum(r["exact_vectors"] for r in plain),
              "mismatches": sum(r["mismatches"] for r in plain) + sum(1 for r in failed if r["expect_mismatch"]),
              "first_mismatch": next((r["first_mismatch"] for r in plain if r["first_mismatch"]), None),
              "first_wrong_layer": next((r["first_wrong_layer"] for r in plain if r["first_wrong_layer"]), None),
              "latency": int(man["latency"]), "phases": results}
    (job_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    assert not failed, f"phases failed: {[(r['name'], r['mismatches'], r['first_mismatch']) for r in failed]}"
