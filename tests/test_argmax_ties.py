"""Argmax ties at the maximum: the first (lowest) channel index must win, in the golden
model, the Verilog (co-simulation) and the HLS C++ (C-simulation).

The other test networks put argmax behind a dense layer, where two channels almost
never hold the same maximum, so a comparator that lets the *last* index win survived
them (issue 17).  Here argmax reads narrow tensors directly: integer, per-channel
power-of-two scaled (equal real values from different integers), non-power-of-two
per-channel scales (C++ only: the RTL refuses them) and minifloat codes; every
stimulus is checked to contain many rows whose maximum is held by two or more
channels, with the first and last holder differing.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hls.cpp import hls_cpp
from rtl_sim.csim import run_csim
from hls.rtl.minifloat_code import grid
from hls.rtl.verilog import generate
from qat.ir import golden
from qat.ir.network import Input, Network, Op
from qat.ir.types import IntType, MinifloatType
from rtl_nets import Builder
from rtl_sim.cosim import run_cosim

PO2 = (1.0, 0.5, 2.0, 1.0, 0.25, 0.5)  # per-channel scales of the scaled argmax (RTL: powers of two)
NON_PO2 = (0.3, 0.6, 0.15, 0.3, 0.9, 0.45)  # C++: exact rational comparison; 2*0.3 == 0.6 etc.
E3M2 = MinifloatType(3, 2)


def int_net() -> Network:
    """x int3 (2, 6) -> argmax (integer) and -> identity requant to per-channel po2 scales -> argmax;
    the two index tensors concatenated."""
    nb = Builder("argmax_ties", (2, 6), IntType(3, True, (0.25,)), seed=40)
    nb.add("a_int", "argmax", ["x"], scale=(1.0,))
    nb.requant_to("q", "x", 3, mult=np.ones(6, np.int64), shift=np.zeros(6, np.int64), ch_scale=PO2)
    nb.add("a_pc", "argmax", ["q"], scale=(1.0,))
    nb.add("out", "concat", ["a_int", "a_pc"], t=IntType(3, False))
    return nb.network("out")


def mf_net() -> Network:
    """E3M2 codes (3, 5) -> argmax over the codes' values."""
    nb = Builder("argmax_ties_mf", (3, 5), E3M2, seed=41)
    nb.add("out", "argmax", ["x"], IntType(3, False))
    return nb.network("out")


def int_vectors(n: int, seed: int) -> np.ndarray:
    """Edge rows, then random int3 rows; a third of them with the row maximum copied to a
    second, random channel (ties at the maximum in every tree position)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 4, size=(n, 2, 6))
    for v in range(0, n, 3):
        for p in range(2):
            a, b = rng.choice(6, size=2, replace=False)
            x[v, p, b] = x[v, p, a] = x[v, p].max()
    x[0], x[1], x[2] = -4, 3, 0
    return x.astype(np.int64)


def mf_vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = grid(E3M2)
    small = g[len(g) // 2 - 4:len(g) // 2 + 5]  # the 9 values nearest zero: frequent ties
    x = rng.choice(small, size=(n, 3, 5))
    x[n // 2:] = rng.choice(g, size=(n - n // 2, 3, 5))
    for v in range(0, n, 3):
        for p in range(3):
            a, b = rng.choice(5, size=2, replace=False)
            x[v, p, b] = x[v, p, a] = x[v, p].max()
    x[0], x[1], x[2] = g.min(), g.max(), 0
    return x.astype(np.int64)


def ties_at_max(vals: np.ndarray, scales=None) -> int:
    """Rows (over the last axis) whose maximum real value is held by two or more channels."""
    rows = vals.reshape(-1, vals.shape[-1]).astype(object)
    if scales is not None:
        rows = rows * np.array([Fraction(float(s)) for s in scales], dtype=object)
    return int(sum(1 for r in rows if sum(1 for v in r if v == max(r)) >= 2))


def assert_first_index_wins(x: np.ndarray, idx: np.ndarray, scales=None) -> None:
    """An independent reference: the smallest index among the channels holding the maximum."""
    rows = x.reshape(-1, x.shape[-1]).astype(object)
    if scales is not None:
        rows = rows * np.array([Fraction(float(s)) for s in scales], dtype=object)
    want = [min(i for i, v in enumerate(r) if v == max(r)) for r in rows]
    assert idx.reshape(-1).tolist() == want


def test_golden_first_index_wins_and_vectors_tie():
    net = int_net()
    x = int_vectors(600, 1)
    env = golden.run(net, x, keep_all=True)
    assert_first_index_wins(x, env["a_int"])
    assert_first_index_wins(env["q"], env["a_pc"], PO2)
    assert ties_at_max(x) > 300 and ties_at_max(env["q"], PO2) > 150
    m = mf_vectors(600, 2)
    assert_first_index_wins(m, golden.run(mf_net(), m)["out"])
    assert ties_at_max(m) > 400


@pytest.mark.parametrize("simulator", ["verilator"])
def test_rtl_argmax_ties(simulator, tmp_path):
    """Integer and per-channel po2-scaled argmax, every layer traced."""
    net = int_net()
    x = int_vectors(600, 1)
    res = run_cosim(net, x, tmp_path, simulator, trace_layers=True, seed=3)
    assert res.ok and res.exact_vectors == len(x) and res.first_wrong_layer is None, res.describe()


def test_rtl_minifloat_argmax_ties(tmp_path):
    net = mf_net()
    x = mf_vectors(600, 2)
    res = run_cosim(net, x, tmp_path, "verilator", design=generate(net, pipeline="layer"), trace_layers=True, seed=4)
    assert res.ok and res.exact_vectors == len(x), res.describe()


def cpp_net() -> Network:
    """Two inputs (int3 (2, 6) and E3M2 (3, 5)); outputs: integer, po2-scaled, non-po2-scaled
    and minifloat argmax."""
    xt = IntType(3, True, (0.25,))
    ops = [Op("a_int", "argmax", ["x"], (2, 1), IntType(3, False)),
           Op("q", "requant", ["x"], (2, 6), IntType(3, True, PO2), {"rounding": "floor", "overflow": "saturate"},
              {"mult": np.ones(6, np.int64), "shift": np.zeros(6, np.int64)}),
           Op("a_pc", "argmax", ["q"], (2, 1), IntType(3, False)),
           Op("r", "requant", ["x"], (2, 6), IntType(3, True, NON_PO2), {"rounding": "floor", "overflow": "saturate"},
              {"mult": np.ones(6, np.int64), "shift": np.zeros(6, np.int64)}),
           Op("a_npo2", "argmax", ["r"], (2, 1), IntType(3, False)),
           Op("a_mf", "argmax", ["m"], (3, 1), IntType(3, False))]
    net = Network("argmax_ties_cpp", [Input("x", (2, 6), xt), Input("m", (3, 5), E3M2)], ops,
                  ["a_int", "a_pc", "a_npo2", "a_mf"])
    from qat.ir.intervals import validate

    validate(net)
    return net


def test_cpp_argmax_ties(tmp_path):
    net = cpp_net()
    x, m = int_vectors(600, 5), mf_vectors(600, 6)
    env = golden.run(net, {"x": x, "m": m}, keep_all=True)
    assert_first_index_wins(env["r"], env["a_npo2"], NON_PO2)
    assert ties_at_max(env["r"], NON_PO2) > 80
    hls_cpp.generate(net).write(tmp_path)
    res = run_csim(net, tmp_path, [x, m])
    assert res.ok and res.exact_vectors == 600, res.describe()
