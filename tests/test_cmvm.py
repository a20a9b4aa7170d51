"""The constant-matrix engine (hls.engine.cmvm): exact results, exact node ranges, the depth
bound, determinism, the spanning-tree stage, and its Verilog through ModuleText.linear_layer."""
from __future__ import annotations

import numpy as np
import pytest

from hls.engine.cmvm import bits_for, build, csd, csd_weight
from hls.engine.cost import graph_luts


def _inputs(lo: np.ndarray, hi: np.ndarray, W: np.ndarray, rng, n: int = 64) -> np.ndarray:
    """Random vectors plus the extremes: all-lo, all-hi, zero (where legal) and each row's max/min corner."""
    xs = [lo, hi, np.clip(np.zeros_like(lo), lo, hi)]
    for r in range(W.shape[0]):
        xs.append(np.where(W[r] > 0, hi, lo))
        xs.append(np.where(W[r] > 0, lo, hi))
    xs += [rng.integers(lo, hi + 1) for _ in range(n)]
    return np.stack(xs)


def _case(seed: int):
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 24)), int(rng.integers(1, 20))
    wb = int(rng.integers(1, 10))
    W = rng.integers(-(1 << (wb - 1)), (1 << (wb - 1)) + 1, (n_out, n_in))
    W[rng.random(W.shape) < rng.random() * 0.6] = 0
    if n_out > 2:
        W[1] = W[0] + (rng.random(n_in) < 0.2)  # similar rows: the spanning tree has work to do
        W[-1] = 0  # a zero row
    ib = int(rng.integers(1, 17))
    if rng.random() < 0.5:
        lo, hi = np.full(n_in, -(1 << (ib - 1))), np.full(n_in, (1 << (ib - 1)) - 1)
    else:
        lo, hi = np.zeros(n_in, dtype=np.int64), np.full(n_in, (1 << ib) - 1)
    lo[0] = hi[0] = 3 if n_in > 1 else lo[0]  # a constant input
    b = rng.integers(-1000, 1000, n_out) * (rng.random(n_out) < 0.7)
    return W, b, lo.astype(np.int64), hi.astype(np.int64), rng


@pytest.mark.parametrize("seed", range(24))
def test_graph_is_exact_and_every_node_exactly_as_wide_as_its_range(seed):
    W, b, lo, hi, rng = _case(seed)
    g = build(W, b, lo, hi, slack=seed % 3)
    x = _inputs(lo, hi, W, rng)
    ref = x.astype(object) @ W.T.astype(object) + b.astype(object)
    assert (g.evaluate(x) == ref).all()
    # each node's range is the exact range of its linear function over the input box, reached at its corners
    n_in, nodes = W.shape[1], g.nodes
    vals = g.values(np.vstack([np.zeros((1, n_in), dtype=np.int64), np.eye(n_in, dtype=np.int64)]))
    C = np.array([[int(vals[g.n_inputs + j][i + 1] - vals[g.n_inputs + j][0]) for i in range(n_in)]
                  for j in range(len(nodes))], dtype=np.int64).reshape(len(nodes), n_in)
    if len(nodes):
        assert [(nd.lo, nd.hi) for nd in nodes] == [
            (int(np.minimum(c * lo, c * hi).sum()), int(np.maximum(c * lo, c * hi).sum())) for c in C]
        up = g.values(np.where(C > 0, hi, lo))
        down = g.values(np.where(C > 0, lo, hi))
        assert all(up[g.n_inputs + j][j] == nd.hi and down[g.n_inputs + j][j] == nd.lo for j, nd in enumerate(nodes))
    for o, r in zip(g.outputs, range(W.shape[0])):
        assert o.lo == min(ref[:, r]) and o.hi == max(ref[:, r])  # the row's own corners are in x


@pytest.mark.parametrize("seed", range(12))
def test_depth_bound_is_respected(seed):
    W, b, lo, hi, _ = _case(100 + seed)
    need = max(0, (int(csd_weight(W).sum(axis=1).max()) - 1).bit_length())
    for slack in (0, 1, 2):
        g = build(W, b, lo, hi, slack=slack)
        for o in g.outputs:
            if o.sig >= 0:
                assert g.sig_depth(o.sig) <= need + slack
    g = build(W, b, lo, hi, depth_bound=need + 3)
    assert all(g.sig_depth(o.sig) <= need + 3 for o in g.outputs if o.sig >= 0)


def test_cse_pattern_order_does_not_depend_on_how_often_it_is_resorted(monkeypatch):
    """The CSE walks its two-input patterns from a sorted array and re-sorts it when many went stale;
    re-sorting after every few stale patterns or never must extract the same patterns in the same order."""
    import hls.engine.cmvm as cmvm

    rng = np.random.default_rng(3)
    W = rng.integers(-128, 128, (12, 40))
    lo, hi = np.full(40, -128), np.full(40, 127)
    b = np.zeros(12, dtype=np.int64)
    monkeypatch.setattr(cmvm, "RESORT_STALE", 10**9)
    never = build(W, b, lo, hi)
    monkeypatch.setattr(cmvm, "RESORT_STALE", 0)
    often = build(W, b, lo, hi)
    assert never == often and len(never.nodes) > 100


def test_inputs_too_wide_for_int64_pattern_costs_are_exact():
    """Input ranges near 2**60: the CSE prices its patterns with Python integers (no int64 overflow)."""
    rng = np.random.default_rng(4)
    W = rng.integers(-100, 101, (6, 10))
    lo, hi = np.full(10, -(1 << 60)), np.full(10, (1 << 60) - 1)
    g = build(W, np.arange(6), lo, hi)
    x = np.array([lo, hi, [(-1) ** i << 59 for i in range(10)]], dtype=object)
    assert (g.evaluate(x) == x @ W.T.astype(object) + np.arange(6)).all()
    assert all(nd.hi <= (1 << 60) * 100 * 10 * 2 for nd in g.nodes)


def test_deterministic():
    W, b, lo, hi, _ = _case(7)
    assert build(W, b, lo, hi, slack=2) == build(W.copy(), b.copy(), lo.copy(), hi.copy(), slack=2)


def test_spanning_tree_helps_similar_rows():
    rng = np.random.default_rng(5)
    base = rng.integers(-31, 32, 48)
    W = np.stack([base + (rng.random(48) < 0.05) * rng.integers(-2, 3, 48) for _ in range(16)])
    lo, hi = np.zeros(48, dtype=np.int64), np.full(48, 255)
    flat = build(W, np.zeros(16, dtype=np.int64), lo, hi, slack=3, mst_depths=(1,))
    tree = build(W, np.zeros(16, dtype=np.int64), lo, hi, slack=3, mst_depths=(1, 2, 3))
    assert graph_luts(tree) < 0.8 * graph_luts(flat)
    assert tree.note.startswith("spanning-tree depth") and not tree.note.startswith("spanning-tree depth 1,")
    x = _inputs(lo, hi, W, rng)
    assert (tree.evaluate(x) == x.astype(object) @ W.T.astype(object)).all()


def test_csd_helpers():
    for v in range(-300, 301):
        assert sum(d << k for k, d in csd(v)) == v
        assert csd_weight(np.array([v]))[0] == len(csd(v))
    assert bits_for(-128, 127) == 8 and bits_for(0, 128) == 9 and bits_for(0, 0) == 1 and bits_for(-1, 0) == 1


def test_binary_weights_wide_layer_is_cheap_in_memory():
    """300 -> 4 of +-1 weights on 2-bit inputs: built exactly (bench/cmvm_speed.py: 784 -> 64)."""
    rng = np.random.default_rng(3)
    W = rng.choice([-1, 1], size=(4, 300))
    lo, hi = np.zeros(300, dtype=np.int64), np.full(300, 3)
    g = build(W, np.zeros(4, dtype=np.int64), lo, hi, mst_depths=(1,))
    x = _inputs(lo, hi, W, rng, 8)
    assert (g.evaluate(x) == x.astype(object) @ W.T.astype(object)).all()


def test_too_large_to_unroll_is_one_line_with_an_estimate_and_the_alternatives():
    """An MNIST-sized conv (28x28x16 -> 3x3x32, 8-bit weights) is refused before its taps are listed."""
    import time

    from hls.rtl.emitters import RTLError
    from hls.rtl.verilog import generate
    from qat.ir.types import IntType
    from rtl_nets import Builder

    nb = Builder("mnist_like", (28, 28, 16), IntType(4, True, (2.0 ** -3,)), 0)
    nb.add("conv", "conv2d", ["x"], attrs={"strides": [1, 1], "padding": "same"},
           arrays={"weight": nb.weights((3, 3, 16, 32), -127, 127, 0.0), "bias": nb.bias(32, 20)})
    t = time.perf_counter()
    with pytest.raises(RTLError) as e:
        generate(nb.network("conv"))
    assert time.perf_counter() - t < 20
    msg = str(e.value)
    assert "\n" not in msg and "adders" in msg and "--io stream" in msg and "--reuse" in msg and "conv" in msg


# latencies (cycles) of the generator before the engine (greedy-CSE linear_layer, commit 0926185)
_OLD_LATENCY = {("cnn2d", "depth:1"): 42, ("cnn2d", "depth:2"): 24, ("seq1d", "depth:1"): 27,
                ("seq1d", "depth:2"): 16, ("branch", "depth:1"): 35, ("branch", "depth:3"): 15,
                ("cnn2d", "layer"): 11, ("branch", "layer"): 10}


@pytest.mark.parametrize("name,pipeline", sorted(_OLD_LATENCY))
def test_latency_does_not_grow(name, pipeline):
    import rtl_nets
    from hls.rtl.verilog import generate

    assert generate(rtl_nets.ALL[name](), pipeline=pipeline).latency <= _OLD_LATENCY[(name, pipeline)]


def test_qrtl_rtl_prints_the_estimate():
    import rtl_nets
    from hls.engine.cost import estimates, summary
    from hls.rtl.verilog import generate

    d = generate(rtl_nets.cnn2d())
    est = estimates(d.files)
    assert len(est) == 5 and all(a > 0 and lut > 0 for _, a, lut in est)  # 4 convs and the dense
    line = summary(d.files)
    assert line.startswith("constant arithmetic") and "\n" not in line
