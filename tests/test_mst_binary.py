"""MST-reordered binary layers (hls/rtl/binary_mst.py): the arithmetic, the generated RTL
(co-simulated bit-exact against the golden model with every layer traced, lint-clean), the
latency bound, the report and the bad-input messages."""
from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

from hls.rtl.binary_mst import BnnOrder, make_plan, evaluate, module_cost
from hls.rtl.verilog import RTLError, generate
from qat.ir.network import Network
from qat.ir.types import BinaryType
from rtl_nets import Builder, _reshape, binary, branch, cnn2d, seq1d
from rtl_sim.cosim import run_cosim, tool_env
from rtl_sim.vectors import random_vectors


def correlated_bits(rng, n: int, c: int, p: float = 0.12, negate_every: int = 3) -> np.ndarray:
    """Columns near one base vector, every ``negate_every``-th one near its complement."""
    base = rng.integers(0, 2, (n, 1))
    w = np.where(rng.random((n, c)) < p, 1 - base, base)
    w[:, ::negate_every] = 1 - w[:, ::negate_every]
    return w.astype(np.int64)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, None])
def test_plan_arithmetic_equals_popcount(depth):
    """P_c from the tree (plain and negated edges, either bit polarity) = popcount(XNOR(x, w_c))."""
    rng = np.random.default_rng(depth or 0)
    negated = 0
    for _ in range(15):
        n, c = int(rng.integers(2, 40)), int(rng.integers(2, 24))
        w = correlated_bits(rng, n, c)
        x = rng.integers(0, 2, (64, n))
        plan = make_plan(w, list(range(c)), depth)
        got = evaluate(plan, w, x)
        for ch in range(c):
            assert np.array_equal(got[ch], (x == w[:, ch]).sum(axis=1)), (n, c, depth, ch)
        if depth is not None:
            assert plan.max_depth <= depth
        negated += sum(e.negated for e in plan.edges.values())
    assert negated > 0  # the negated-parent identity was exercised


def test_negated_parent_identity_by_hand():
    """w_c = NOT w_p except at position 0: P_c = N - P_p - 1 + 2*XNOR(x0, w_p0)."""
    wp = np.array([1, 0, 1, 1, 0, 0, 1])
    wc = 1 - wp
    wc[0] = wp[0]
    w = np.stack([wp, wc], axis=1)
    plan = make_plan(w, [0, 1], None)
    assert plan.edges[1].negated and list(plan.edges[1].pos) == [0]
    x = np.array([[1, 1, 1, 1, 1, 1, 1], [0, 1, 0, 0, 1, 1, 0], [1, 0, 0, 1, 0, 1, 1]])
    pp = (x == wp).sum(1)
    assert np.array_equal(evaluate(plan, w, x)[1], 7 - pp - 1 + 2 * (x[:, 0] == wp[0]))
    assert np.array_equal(evaluate(plan, w, x)[1], (x == wc).sum(1))


def mst_net(seed: int = 3) -> Network:
    """Binary MLP + CNN with correlated (and negated) channels: thresholded and raw layers."""
    nb = Builder("mstnet", (6, 6, 2), BinaryType(), seed)
    rng = np.random.default_rng(seed)
    wc = correlated_bits(rng, 3 * 3 * 2, 10).reshape(3, 3, 2, 10)
    n = 18
    th = rng.integers(-n + 1, n, size=10)
    th[4] = n + 3  # direction +1: always off (left out of the tree)
    d = np.where(np.arange(10) % 2, -1, 1)
    nb.add("bc", "bconv2d", ["x"], BinaryType(), attrs={"strides": [1, 1], "padding": "valid"},
           arrays={"weight": wc, "threshold": th, "direction": d})                      # (4, 4, 10)
    _reshape(nb, "f", "bc", (160,))
    n = 160
    w1 = correlated_bits(rng, n, 24, p=0.2)
    nb.add("bd1", "bdense", ["f"], BinaryType(),
           arrays={"weight": w1, "threshold": rng.integers(-20, 20, size=24),
                   "direction": np.where(np.arange(24) % 3, 1, -1)})
    nb.add("bd2", "bdense", ["bd1"], arrays={"weight": correlated_bits(rng, 24, 12, p=0.25)})  # raw 2pc - 24
    return nb.network("bd2")


@pytest.fixture(scope="module")
def net():
    return mst_net()


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("pipeline", ["layer", "depth:1", "depth:3"])
def test_latency_bound_and_report(net, depth, pipeline):
    plain = generate(net, pipeline=pipeline, bnn_order="plain")
    d = generate(net, pipeline=pipeline, bnn_order="mst", mst_depth=depth)
    rep = d.manifest["bnn"]["layers"]
    assert set(rep) == {"bc", "bd1", "bd2"}
    bound = math.ceil(math.log2(depth)) + 1
    for name, r in rep.items():
        assert r["form"] == "mst" and r["tree_depth"] <= depth
        assert r["mst"]["xnor"] < r["plain"]["xnor"] and r["mst"]["adder_bits"] < r["plain"]["adder_bits"]
        assert 0 <= r["added_latency"] <= (bound if pipeline.startswith("depth") else 0), (name, r)
        assert r["added_latency"] == d.manifest["ops"][name]["cycles"] - plain.manifest["ops"][name]["cycles"]
    assert d.latency == plain.latency + sum(r["added_latency"] for r in rep.values())
    if pipeline == "depth:1" and depth >= 2:
        assert any(r["added_latency"] > 0 for r in rep.values())  # the bound is not vacuous


def test_negated_edges_and_bconv_in_report(net):
    rep = generate(net, bnn_order="mst").manifest["bnn"]["layers"]
    assert rep["bc"]["negated_edges"] > 0 and rep["bd1"]["negated_edges"] > 0
    assert rep["bc"]["tree_channels"] == 9  # the always-off channel is a constant, not a vertex


def test_default_is_auto_and_plain_is_unchanged(net):
    """The default picks per layer by the cost model; networks without binary layers are byte-identical
    to the plain order (no 'bnn' section); --bnn-order plain keeps the full popcount per channel."""
    a, b = generate(net), generate(net, bnn_order="auto")
    assert a.files == b.files and a.manifest == b.manifest and a.manifest["bnn"]["order"] == "auto"
    p = generate(net, bnn_order="plain")
    assert "bnn" not in p.manifest
    assert module_cost(p.files[f"{p.top}_bd1.v"])["xnor"] == 160 * 24  # a full popcount per channel
    for other in (cnn2d(), seq1d(), branch()):
        x, y = generate(other), generate(other, bnn_order="plain")
        assert x.files == y.files and x.manifest == y.manifest and "bnn" not in x.manifest


def test_auto_picks_the_cheaper_form(net):
    d = generate(net, bnn_order="auto", mst_depth=2)
    mst = generate(net, bnn_order="mst", mst_depth=2)
    for name, r in d.manifest["bnn"]["layers"].items():
        assert r["form"] == "mst"
        assert module_cost(d.files[f"{d.top}_{name}.v"])["adder_bits"] == r["mst"]["adder_bits"]
    assert d.files == mst.files


def test_too_small_layer_notice_and_plain_form():
    nb = Builder("tiny", (5,), BinaryType(), 1)
    nb.add("one", "bdense", ["x"], arrays={"weight": np.array([[1], [0], [1], [1], [0]])})
    net = nb.network("one")
    d = generate(net, bnn_order="mst")
    assert d.files == generate(net, bnn_order="plain").files  # plain form
    auto = generate(net)  # auto: the plain form without a notice (nothing was asked for)
    assert auto.files == d.files and auto.manifest["bnn"]["layers"]["one"]["form"] == "plain"
    assert auto.manifest["bnn"]["notices"] == []
    (notice,) = d.manifest["bnn"]["notices"]
    assert "'one'" in notice and "too small" in notice and "\n" not in notice


def test_bad_input_one_line():
    with pytest.raises(RTLError, match=r"^network 'cnn2d': --bnn-order mst needs binary layers") as e:
        generate(cnn2d(), bnn_order="mst")
    assert "\n" not in str(e.value)
    with pytest.raises(RTLError, match=r"--mst-depth must be at least 1.*got 0$"):
        generate(binary(), bnn_order="mst", mst_depth=0)
    with pytest.raises(RTLError, match=r"--bnn-order must be one of"):
        BnnOrder(binary(), "tree", None)
    assert "bnn" not in generate(cnn2d(), bnn_order="auto").manifest


@pytest.mark.parametrize("depth,pipeline", [(1, "layer"), (4, "depth:1")])
def test_lint_clean(net, tmp_path, depth, pipeline):
    d = generate(net, pipeline=pipeline, bnn_order="mst", mst_depth=depth)
    d.write(tmp_path)
    res = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", d.top] +
                         [str(tmp_path / f) for f in d.verilog_files], capture_output=True, text=True,
                         env=tool_env(), cwd=tmp_path)
    assert res.returncode == 0 and not [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("%")], \
        res.stdout + res.stderr


# Verilator builds are slow on the shared machine: two designs cover depth bounds 2 and 3, every
# pipeline regime that adds registers inside the tree, thresholded and raw bdense/bconv2d, negated
# parents; trace_layers compares every layer's output with the golden model (the plain designs of
# these nets are co-simulated the same way in tests/test_rtl.py and tests/test_cosim.py, so equal
# golden outputs mean plain == MST).
@pytest.mark.parametrize("which,depth,pipeline", [("mst", 3, "depth:1"), ("binary", 2, "depth:2")])
def test_cosim_bit_exact(net, tmp_path, which, depth, pipeline):
    n = net if which == "mst" else binary()
    d = generate(n, pipeline=pipeline, bnn_order="mst", mst_depth=depth)
    assert all(r["form"] == "mst" for r in d.manifest["bnn"]["layers"].values())
    res = run_cosim(n, random_vectors(n, 300, 1), tmp_path / "sim", design=d, trace_layers=True)
    assert res.ok, res.describe()
    assert res.latency == d.latency


# ---- the training regulariser (Brevitas and QKeras recipes) ----------------------------------

def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data - 8.0).astype(np.float32), d.target


def test_brevitas_surrogate_is_the_hamming_distance_when_saturated_and_shrinks_it():
    import torch

    from qat.recipes.brevitas_recipes import BinaryMLP, MSTRegularizer, binary_layers, train_bnn

    X, y = _digits()
    torch.manual_seed(0)
    m = BinaryMLP(64, (64, 64), 10)
    # sharp enough, every tanh is +-1 (weights are scaled by their mean magnitude): the surrogate
    # counts sign disagreements along the tree's edges exactly
    reg = MSTRegularizer(binary_layers(m), 1.0, every=1, max_depth=3, sharpness=1e4)
    want = sum(dist / la.weight.numel() for dist, la in zip(reg.distance(), reg.layers))
    assert float(reg()) == pytest.approx(want, rel=1e-4)
    dists = {}
    for lam in (0.0, 4.0):
        torch.manual_seed(0)
        m = BinaryMLP(64, (64, 64), 10)
        h = train_bnn(m, X[:800], y[:800], epochs=3, lam=lam, mst_depth=3)
        dists[lam] = sum(h[-1]["mst_distance"])
    assert dists[4.0] < 0.85 * dists[0.0], dists


def test_qkeras_regulariser_imports_exactly_and_shrinks_the_distance():
    from qat.importers.from_qkeras import import_qkeras
    from qat.importers.input_quant import quantize_real
    from qat.ir import golden
    from qat.recipes import qkeras_recipes as K

    X, y = _digits()
    dists = {}
    import tensorflow as tf

    for lam in (0.0, 4.0):
        tf.keras.utils.set_random_seed(0)  # the initial weights must not depend on what ran before in the process
        m = K.build_bnn_mlp(64, (48, 48))
        dists[lam] = sum(K.train_bnn(m, X[:800], y[:800], epochs=3, lam=lam, mst_depth=3)["mst_distance"])
    assert dists[4.0] < 0.95 * dists[0.0], dists  # weaker than in Brevitas at equal lambda (measured: -8 %)
    net = import_qkeras(m)
    assert [op.kind for op in net.ops] == ["bdense"] * 3 and "threshold" in net.ops[0].arrays
    got = np.asarray(golden.run(net, quantize_real(net.inputs[0], X[800:1000]))[net.outputs[0]], dtype=float)
    assert np.array_equal(got.reshape(200, -1), m.predict(X[800:1000], verbose=0))
    d = generate(net, bnn_order="mst", mst_depth=3)
    assert all(r["form"] == "mst" for name, r in d.manifest["bnn"]["layers"].items() if name != net.ops[-1].name)


def test_cli_rtl_prints_the_report_and_refuses_bad_input(net, tmp_path, capsys):
    import json

    from qat.ir import netfile
    from qrtl.cli import main

    netfile.save(net, tmp_path / "net")
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "rtl"), "--bnn-order", "mst", "--mst-depth", "2",
                 "--pipeline", "depth:1"]) == 0
    out = capsys.readouterr().out
    man = json.loads((tmp_path / "rtl" / "manifest.json").read_text())
    assert man["bnn"]["mst_depth"] == 2 and set(man["bnn"]["layers"]) == {"bc", "bd1", "bd2"}
    for name, r in man["bnn"]["layers"].items():
        assert f"{name} ({r['kind']}" in out and f"+{r['added_latency']} cycles" in out
    assert f"latency {man['latency']} cycles" in out
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "rtl2"), "--mst-depth", "0",
                 "--bnn-order", "mst"]) != 0
    err = capsys.readouterr()
    assert "--mst-depth must be at least 1" in err.out + err.err
