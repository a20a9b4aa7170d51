"""Reconfigurable and TMR weight registers: load a weight set over the serial
port, then a second, different set, and compare each with its own golden
model; single-copy upsets are voted out by TMR and visible without it."""
from __future__ import annotations

import copy
import subprocess

import numpy as np
import pytest

from hls.rtl.reconfig import (config_bitstream, config_words, param_layout, same_architecture,
                          worst_case_network)
from hls.rtl.verilog import RTLError, generate
from qat.ir.intervals import analyze
from qat.ir.network import Input, Network, NetworkError, Op
from qat.ir.types import IntType
from rtl_sim.cosim import run_cosim, tool_env


def small_net(seed: int, conv: bool = True) -> Network:
    """conv2d 4x4x1 -> 2x2x3 (3x3, stride 2, same) -> requant -> flatten -> dense 12->4."""
    rng = np.random.default_rng(seed)
    ops = []
    inp = Input("x", (4, 4, 1), IntType(8, True, (2.0 ** -4,)))
    ops.append(Op("conv", "conv2d", ["x"], (2, 2, 3), IntType(20, True, (2.0 ** -9,)),
                  {"strides": [2, 2], "padding": "same", "weight_bits": 6, "bias_bits": 10},
                  {"weight": rng.integers(-32, 32, size=(3, 3, 1, 3)), "bias": rng.integers(-300, 300, size=3)}))
    ops.append(Op("act", "requant", ["conv"], (2, 2, 3), IntType(6, False, (2.0 ** -4,)),
                  {"rounding": "half_even", "overflow": "saturate", "lo": 0, "hi": 63},
                  {"mult": np.array([1]), "shift": np.array([5])}))
    ops.append(Op("flat", "reshape", ["act"], (12,), IntType(6, False, (2.0 ** -4,)), {"shape": [12]}))
    ops.append(Op("fc", "dense", ["flat"], (4,), IntType(20, True, (2.0 ** -9,)),
                  {"weight_bits": 6, "bias_bits": 10},
                  {"weight": rng.integers(-32, 32, size=(12, 4)), "bias": rng.integers(-300, 300, size=4)}))
    net = Network(f"small{seed}", [inp], ops, ["fc"])
    analyze(net)
    return net


@pytest.fixture(scope="module")
def nets():
    return small_net(1), small_net(2)


def test_layout_and_bitstream(nets):
    a, b = nets
    layout = param_layout(a)
    assert [(blk.op, blk.n_w, blk.w_bits, blk.n_b, blk.b_bits) for blk in layout] == \
        [("conv", 27, 6, 3, 10), ("fc", 48, 6, 4, 10)]
    words = config_words(a, layout)
    # the chain runs conv -> fc, so the fc words are sent first
    assert [v for v, _ in words[:48]] == [int(v) for v in a.op("fc").arrays["weight"].ravel()]
    value, n = config_bitstream(a, layout)
    assert n == sum(blk.bits for blk in layout) and value.bit_length() <= n
    same_architecture(a, b)
    other = copy.deepcopy(a)
    other.op("act").arrays["shift"] = np.array([4])
    with pytest.raises(NetworkError, match="only weights and biases are reconfigurable"):
        same_architecture(a, other)
    too_big = copy.deepcopy(b)
    too_big.op("fc").arrays["weight"][0, 0] = 40
    with pytest.raises(NetworkError, match="does not fit 6-bit registers"):
        config_bitstream(worst_case_network(too_big, param_layout(too_big, 7)), layout)


def test_worst_case_accumulators_hold_any_weight_set(nets):
    a, _ = nets
    layout = param_layout(a)
    wide = worst_case_network(a, layout)
    # conv: 9 taps of 8-bit inputs (|x| <= 128) times -32: 9 * 4096 = 36864, plus bias 512 -> 17 bits
    assert wide.op("conv").type.bits >= 17
    assert wide.op("fc").type.bits >= a.op("fc").type.bits


@pytest.mark.parametrize("mode", ["registers", "tmr"])
def test_lint_clean(nets, mode, tmp_path):
    d = generate(nets[0], weights=mode)
    d.write(tmp_path)
    for top in (d.top, d.manifest["axis_top"]):
        res = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top]
                             + [str(tmp_path / f) for f in d.verilog_files], capture_output=True, text=True,
                             env=tool_env())
        assert res.returncode == 0 and "%Warning" not in res.stderr, res.stderr


def test_unknown_mode(nets):
    with pytest.raises(RTLError, match="--weights must be one of"):
        generate(nets[0], weights="eeprom")


def _faults(design, copy_name: str, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for blk in design.manifest["cfg"]["blocks"]:
        bits = blk["n_w"] * blk["w_bits"] + blk["n_b"] * blk["b_bits"]
        out += [{"op": blk["op"], "copy": copy_name, "bit": int(k)} for k in rng.choice(bits, size=n, replace=False)]
    return out


def test_tmr_reload_and_upsets(nets, tmp_path):
    a, b = nets
    d = generate(a, weights="tmr")
    t = a.inputs[0].type
    raw = np.random.default_rng(3).integers(t.lo, t.hi + 1, size=(300, 4, 4, 1))
    raw[:2] = t.hi
    raw[2] = t.lo
    phases = [{"name": "A", "net": a}, {"name": "B", "net": b},
              {"name": "B with upsets", "net": b, "faults": _faults(d, "c", 30, 1)}]
    res = run_cosim(a, raw, tmp_path, design=d, phases=phases)
    assert res.ok, res.describe()
    assert [p["exact_vectors"] for p in res.phases] == [300, 300, 300]
    # the two weight sets really differ in their outputs
    from qat.ir import golden

    assert not np.array_equal(golden.run(a, raw)["fc"], golden.run(b, raw)["fc"])


def test_registers_without_voting_show_the_upset(nets, tmp_path):
    a, b = nets
    d = generate(a, weights="registers")
    t = a.inputs[0].type
    raw = np.random.default_rng(4).integers(t.lo, t.hi + 1, size=(200, 4, 4, 1))
    # flip the sign bit of the first fc weight word (the top of that op's register)
    fc = next(blk for blk in d.manifest["cfg"]["blocks"] if blk["op"] == "fc")
    top_bit = fc["n_w"] * fc["w_bits"] + fc["n_b"] * fc["b_bits"] - 1
    phases = [{"name": "B", "net": b},
              {"name": "B with an upset", "net": b, "faults": [{"op": "fc", "copy": "a", "bit": top_bit}],
               "expect_mismatch": True}]
    res = run_cosim(a, raw, tmp_path, design=d, phases=phases)
    assert res.ok, res.describe()
    assert res.phases[0]["mismatches"] == 0 and res.phases[1]["mismatches"] > 0


# ---- the extreme weight sets: every weight and bias at its register limits ------------------------

def tight_net() -> Network:
    """conv2d 4x4x1 -> 2x2x3 (3x3, stride 2, same) -> requant -> flatten -> dense 12->4, the
    accumulators typed as narrow as the *random* weights allow; the output is both raw
    accumulators (conv flattened, then fc), so every accumulator bit is compared."""
    import rtl_nets

    nb = rtl_nets.Builder("tight", (4, 4, 1), IntType(8, True, (2.0 ** -4,)), seed=7)
    nb.add("conv", "conv2d", ["x"], attrs={"strides": [2, 2], "padding": "same", "weight_bits": 6, "bias_bits": 10},
           arrays={"weight": nb.weights((3, 3, 1, 3), -5, 5), "bias": nb.bias(3, 20)})
    nb.requant_to("act", "conv", 6, signed=False, mult=np.array([1, 1, 1]), shift=np.array([6, 6, 6]))
    rtl_nets._reshape(nb, "flat", "act", (12,))
    nb.add("fc", "dense", ["flat"], attrs={"weight_bits": 6, "bias_bits": 10},
           arrays={"weight": nb.weights((12, 4), -5, 5), "bias": nb.bias(4, 20)})
    rtl_nets._reshape(nb, "cflat", "conv", (12,))
    nb.add("out", "concat", ["cflat", "fc"], t=IntType(24, True, (2.0 ** -9,)))
    return nb.network("out")


def extreme_sets(net: Network, layout) -> dict[str, Network]:
    """Copies of ``net`` with weights/biases at the register limits: all max, all min, the two
    mixed corners (weights min with biases max, and the reverse), and random signs at the limits."""
    rng = np.random.default_rng(9)
    out = {}
    for name, wsel, bsel in (("all max", "max", "max"), ("all min", "min", "min"), ("w min, b max", "min", "max"),
                             ("w max, b min", "max", "min"), ("random limits", "rnd", "rnd")):
        ext = copy.deepcopy(net)
        for blk in layout:
            op = ext.op(blk.op)
            for key, bits in (("weight", blk.w_bits), ("bias", blk.b_bits)):
                lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
                sel = {"max": hi, "min": lo}
                shape = op.arrays[key].shape
                sel_of = wsel if key == "weight" else bsel
                op.arrays[key] = (rng.choice([lo, hi], size=shape) if sel_of == "rnd"
                                  else np.full(shape, sel[sel_of])).astype(np.int64)
        out[name] = worst_case_network(ext, layout)  # types that hold these values (the design's)
    return out


def extreme_inputs(net: Network) -> np.ndarray:
    t = net.inputs[0].type
    shape = tuple(net.inputs[0].shape)
    rng = np.random.default_rng(10)
    edges = [np.full(shape, t.lo), np.full(shape, t.hi), np.zeros(shape, np.int64),
             np.resize([t.lo, t.hi], shape), np.resize([t.hi, t.lo], shape)]
    return np.concatenate([np.stack(edges), rng.integers(t.lo, t.hi + 1, size=(150,) + shape)]).astype(np.int64)


def test_extreme_sets_reach_the_worst_case_bounds():
    """Loaded with the extreme sets and the edge inputs, the accumulators hit exactly the
    worst-case bounds the design is sized for (so the co-simulation below checks their top bits),
    and exceed the types the random weights needed."""
    from qat.ir import golden
    from hls.rtl.reconfig import worst_case_bounds

    net = tight_net()
    layout = param_layout(net)
    bounds = worst_case_bounds(net, layout)
    x = extreme_inputs(net)
    for op in ("conv", "fc"):
        vals = np.concatenate([golden.run(e, x, keep_all=True)[op].ravel() for e in extreme_sets(net, layout).values()])
        assert vals.min() == bounds[op].min and vals.max() == bounds[op].max, op
        assert vals.min() < net.op(op).type.lo and vals.max() > net.op(op).type.hi, op


@pytest.mark.parametrize("mode", ["registers", "tmr"])
def test_extreme_weight_sets_and_shadow_upsets(mode, tmp_path):
    """Co-simulate every extreme set, then register upsets: in the shadow after the commit
    (never reaches the datapath), in active copies a and b of a TMR design (voted out), and in
    the shadow before the commit (the commit copies it into every copy: visible even with TMR)."""
    net = tight_net()
    layout = param_layout(net)
    d = generate(net, weights=mode)
    x = extreme_inputs(net)
    sets = extreme_sets(net, layout)
    blocks = d.manifest["cfg"]["blocks"]
    fc = next(b for b in blocks if b["op"] == "fc")
    sign_bit = fc["n_w"] * fc["w_bits"] + fc["n_b"] * fc["b_bits"] - 1  # the first fc weight's sign bit
    phases = [{"name": n, "net": e} for n, e in sets.items()]
    last = sets["random limits"]
    phases.append({"name": "shadow upsets after commit", "net": last, "faults": _faults(d, "shadow", 20, 11)})
    if mode == "tmr":
        phases += [{"name": "upsets in copy a", "net": last, "faults": _faults(d, "a", 20, 12)},
                   {"name": "upsets in copy b", "net": last, "faults": _faults(d, "b", 20, 13)}]
    phases.append({"name": "shadow upset before commit", "net": last, "expect_mismatch": True,
                   "faults": [{"op": "fc", "copy": "shadow", "bit": sign_bit, "before_commit": True}]})
    res = run_cosim(net, x, tmp_path, design=d, phases=phases, seed=5)
    assert res.ok, res.describe()
    n = len(x)
    by = {p["name"]: p for p in res.phases}
    for name in list(sets) + ["shadow upsets after commit"] + (["upsets in copy a", "upsets in copy b"]
                                                               if mode == "tmr" else []):
        assert by[name]["exact_vectors"] == n and by[name]["mismatches"] == 0, by[name]
    # every injected bit really flipped (one write per register)
    assert by["shadow upsets after commit"]["fault_bits_flipped"] == 40
    if mode == "tmr":
        assert by["upsets in copy a"]["fault_bits_flipped"] == by["upsets in copy b"]["fault_bits_flipped"] == 40
    assert by["shadow upset before commit"]["mismatches"] > 0
