"""IR passes keep every output bit-identical (qat.ir.passes)."""
from __future__ import annotations

import copy

import numpy as np

from qat.ir import golden
from qat.ir.intervals import validate
from qat.ir.network import Input, Network, Op
from qat.ir.passes import fuse_binary_thresholds, run_passes
from qat.ir.types import BinaryType, IntType


def _net(extra_reader: bool = False) -> Network:
    rng = np.random.default_rng(3)
    n_in, c = 9, 6
    w = rng.integers(0, 2, size=(n_in, c))
    t = rng.integers(-9, 10, size=(c, 1))
    t[0, 0], t[1, 0] = -20, 20  # always on / always off
    base = np.where(np.arange(c) % 2 == 0, -1, 1)
    dirn = -base
    ops = [Op("b", "bdense", ["x"], (c,), IntType(5, True), {}, {"weight": w}),
           Op("s", "threshold", ["b"], (c,), BinaryType(), {"step": 2},
              {"thresholds": t, "base": base, "direction": dirn}),
           Op("d", "bdense", ["s"], (3,), IntType(4, True), {}, {"weight": rng.integers(0, 2, size=(c, 3))})]
    outs = ["d"]
    if extra_reader:
        ops.append(Op("r", "reshape", ["b"], (c,), IntType(5, True), {"shape": [c]}))
        outs = ["d", "r"]
    net = Network("bn", [Input("x", (n_in,), BinaryType())], ops, outs)
    validate(net)
    return net


def _all_inputs(n: int) -> np.ndarray:
    bits = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1
    return 2 * bits - 1


def test_binary_layer_and_sign_fuse_exactly():
    net = _net()
    x = _all_inputs(9)  # every input
    want = golden.run(net, x)["d"]
    fused = fuse_binary_thresholds(copy.deepcopy(net))
    assert [op.kind for op in fused.ops] == ["bdense", "bdense"]
    assert "threshold" in fused.op("b").arrays and isinstance(fused.op("b").type, BinaryType)
    assert fused.op("d").inputs == ["b"]
    assert np.array_equal(golden.run(fused, x)["d"], want)
    assert run_passes(copy.deepcopy(net)).ops[0].arrays.keys() == fused.ops[0].arrays.keys()


def test_no_fusion_when_the_sums_are_read_elsewhere():
    net = _net(extra_reader=True)
    out = fuse_binary_thresholds(copy.deepcopy(net))
    assert [op.kind for op in out.ops] == [op.kind for op in net.ops]
