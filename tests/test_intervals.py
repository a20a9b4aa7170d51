"""Interval analysis: proven bounds contain every golden result, are exact
(attained) for linear ops, and validate() rejects malformed or overflowing
networks with a message naming the op."""
from __future__ import annotations

import numpy as np
import pytest

from qat.ir import golden
from qat.ir.intervals import accumulator_bits, analyze, op_bounds, type_bounds, validate
from qat.ir.network import Input, Network, NetworkError, Op
from qat.ir.types import BinaryType, IntType, MinifloatType


def ints(a):
    return np.asarray(a, dtype=object)


def extreme_inputs(t, shape, rng, n_random=200):
    """all-min, all-max, alternating (both phases), random."""
    size = int(np.prod(shape))
    alt = np.array([t.lo if i % 2 == 0 else t.hi for i in range(size)]).reshape(shape)
    alt2 = np.array([t.hi if i % 2 == 0 else t.lo for i in range(size)]).reshape(shape)
    fixed = np.stack([np.full(shape, t.lo), np.full(shape, t.hi), alt, alt2])
    rand = rng.integers(t.lo, t.hi + 1, size=(n_random,) + tuple(shape))
    if isinstance(t, BinaryType):
        rand = np.where(rand >= 0, 1, -1)
    return np.concatenate([fixed, rand])


def assert_contains(net, x):
    bounds = validate(net)
    env = golden.run(net, x, keep_all=True)
    for name, b in bounds.items():
        v = env[name].astype(object)
        assert np.all(v >= b.lo[None]) and np.all(v <= b.hi[None]), name
        t = net.tensor_types()[name]
        assert np.all(v >= t.lo) and np.all(v <= t.hi), name
    return bounds, env


# ---- containment ------------------------------------------------------------------

def test_bounds_contain_golden_dense_chain():
    rng = np.random.default_rng(100)
    in_t = IntType(8)
    w1 = rng.integers(-31, 32, size=(10, 6))
    b1 = rng.integers(-500, 500, size=6)
    w2 = rng.integers(-7, 8, size=(6, 3))
    b2 = rng.integers(-50, 50, size=3)
    net = Network("n", [Input("x", (10,), in_t)], [], ["d1"])
    net.ops.append(Op("d1", "dense", ["x"], (6,), IntType(32), {}, {"weight": w1, "bias": b1}))
    b = analyze(net)["d1"]
    net.ops[0].type = IntType(accumulator_bits(net)["d1"])
    net.outputs = ["d2"]
    net.ops += [Op("q", "requant", ["d1"], (6,), IntType(8), {"rounding": "half_even"},
                   {"mult": np.array([3, 5, 7, 9, 11, 13]), "shift": np.array([6, 7, 8, 6, 7, 8])}),
                Op("r", "clip", ["q"], (6,), IntType(8), {"lo": 0, "hi": 127}),
                Op("d2", "dense", ["r"], (3,), IntType(32), {}, {"weight": w2, "bias": b2})]
    assert b.min < 0 < b.max
    assert_contains(net, extreme_inputs(in_t, (10,), rng))


def test_bounds_contain_golden_conv_pool_add_concat():
    rng = np.random.default_rng(101)
    in_t = IntType(6)
    wa = rng.integers(-15, 16, size=(3, 3, 2, 3))
    wb = rng.integers(-15, 16, size=(2, 2, 2, 3))
    ops = [
        Op("ca", "conv2d", ["x"], (3, 3, 3), IntType(20), {"strides": [2, 2], "padding": "same"},
           {"weight": wa, "bias": rng.integers(-9, 9, size=3)}),
        Op("cb", "conv2d", ["x"], (3, 3, 3), IntType(20), {"strides": [2, 2], "padding": "valid"},
           {"weight": wb, "bias": rng.integers(-9, 9, size=3)}),
        Op("s", "add", ["ca", "cb"], (3, 3, 3), IntType(21)),
        Op("m", "maxpool", ["s"], (2, 2, 3), IntType(21), {"pool": [2, 2], "strides": [2, 2], "padding": "same",
                                                              "dims": 2}),
        Op("a", "avgpool", ["s"], (1, 1, 3), IntType(25), {"pool": [3, 3], "strides": [3, 3], "padding": "valid",
                                                               "dims": 2}),
        Op("f", "reshape", ["m"], (12,), IntType(21), {"shape": [12]}),
        Op("g", "reshape", ["a"], (3,), IntType(25), {"shape": [3]}),
        Op("k", "concat", ["f", "g"], (15,), IntType(25)),
        Op("c1", "conv1d", ["k3"], (2, 2), IntType(40), {"strides": [2], "padding": "same"},
           {"weight": rng.integers(-3, 4, size=(2, 5, 2)), "bias": np.zeros(2, np.int64)}),
    ]
    ops.insert(8, Op("k3", "reshape", ["k"], (3, 5), IntType(25), {"shape": [3, 5]}))
    net = Network("n", [Input("x", (6, 6, 2), in_t)], ops, ["c1"])
    bounds, _ = assert_contains(net, extreme_inputs(in_t, (6, 6, 2), rng))
    # the declared types are wide enough; accumulator_bits reports what is really needed
    need = accumulator_bits(net)
    for op in ops:
        assert need[op.name] <= op.type.bits


def test_bounds_contain_golden_binary_threshold_lut_argmax():
    rng = np.random.default_rng(102)
    wbits = rng.integers(0, 2, size=(12, 5)).astype(np.uint8)
    ops = [
        Op("b", "bdense", ["x"], (5,), IntType(5), {}, {"weight": wbits}),
        Op("bt", "bdense", ["x"], (5,), BinaryType(), {},
           {"weight": wbits, "threshold": np.array([-2, 0, 2, 4, 13]), "direction": np.array([1, -1, 1, -1, 1])}),
        Op("t", "threshold", ["b"], (5,), IntType(3, False), {"step": 1},
           {"thresholds": np.array([[-6, -2, 2, 6]] * 5), "base": np.zeros(5, np.int64),
            "direction": np.ones(5, np.int64)}),
        Op("l", "lut", ["t"], (5,), IntType(4), {"in_lo": 0}, {"table": np.array([-8, -3, 0, 3, 7, 100, 100, 100])}),
        Op("am", "argmax", ["l"], (1,), IntType(3, False)),
    ]
    net = Network("n", [Input("x", (12,), BinaryType())], ops, ["am", "bt"])
    bounds, env = assert_contains(net, extreme_inputs(BinaryType(), (12,), rng))
    # the lut's unreachable entries (index 5..7) are not part of its range
    assert bounds["l"].max == 7 and bounds["l"].min == -8
    assert bounds["am"].lo.shape == (1,)


def test_bounds_requant_minifloat_and_wrap():
    rng = np.random.default_rng(103)
    in_t = IntType(12)
    mf = MinifloatType(4, 3, variant="ocp")
    ops = [Op("f", "requant", ["x"], (4,), mf, {}, {"mult": np.array([1, 3, 5, 7]), "shift": np.array([0, 2, 4, 13])}),
           Op("w", "requant", ["x"], (4,), IntType(6), {"overflow": "wrap"},
              {"mult": np.array([1, 1, 1, 1]), "shift": np.array([0, 5, 6, 9])})]
    net = Network("n", [Input("x", (4,), in_t)], ops, ["f", "w"])
    bounds, env = assert_contains(net, extreme_inputs(in_t, (4,), rng, 2000))
    # wrapping channels cover the whole type; channels that cannot wrap keep their exact range
    assert bounds["w"].lo.tolist() == [-32, -32, -32, -4]
    assert bounds["w"].hi.tolist() == [31, 31, 31, 4]
    assert bounds["f"].max <= mf.max_units


# ---- exactness -----------------------------------------------------------------------

def test_dense_bounds_attained():
    rng = np.random.default_rng(110)
    for in_t in (IntType(8), IntType(5, False), IntType(3), BinaryType()):
        ci, co = 9, 7
        w = rng.integers(-20, 21, size=(ci, co))
        w[:, 0] = 0
        w[:, 1] = np.abs(w[:, 1])
        b = rng.integers(-100, 100, size=co)
        op = Op("d", "dense", ["x"], (co,), IntType(32), {}, {"weight": w, "bias": b})
        net = Network("n", [Input("x", (ci,), in_t)], [op], ["d"])
        bd = validate(net)["d"]
        for o in range(co):
            x_hi = np.where(w[:, o] > 0, in_t.hi, in_t.lo)[None]
            x_lo = np.where(w[:, o] > 0, in_t.lo, in_t.hi)[None]
            assert golden.run(net, x_hi)["d"][0, o] == bd.hi[o]
            assert golden.run(net, x_lo)["d"][0, o] == bd.lo[o]
        # brute-force-free check of the formula
        hi = (np.where(w > 0, w, 0) * in_t.hi + np.where(w < 0, w, 0) * in_t.lo).sum(axis=0) + b
        lo = (np.where(w > 0, w, 0) * in_t.lo + np.where(w < 0, w, 0) * in_t.hi).sum(axis=0) + b
        assert bd.hi.tolist() == hi.tolist() and bd.lo.tolist() == lo.tolist()
        # all-max / all-min inputs stay inside
        for xv in (in_t.lo, in_t.hi):
            y = golden.run(net, np.full((1, ci), xv))["d"][0]
            assert np.all(y >= bd.lo.astype(np.int64)) and np.all(y <= bd.hi.astype(np.int64))
        need = accumulator_bits(net)["d"]
        lo_v, hi_v = bd.min, bd.max
        assert -(1 << (need - 1)) <= lo_v and hi_v <= (1 << (need - 1)) - 1
        assert lo_v < -(1 << (need - 2)) or hi_v > (1 << (need - 2)) - 1  # one bit fewer does not fit


def test_conv2d_bounds_attained_per_output():
    rng = np.random.default_rng(111)
    in_t = IntType(4)
    for pad, strides in (("valid", (1, 1)), ("same", (2, 2)), ("same", (1, 1))):
        w = rng.integers(-5, 6, size=(3, 3, 2, 2))
        b = rng.integers(-5, 6, size=2)
        h = 4
        probe = golden.run(Network("p", [Input("x", (h, h, 2), in_t)],
                                   [Op("c", "conv2d", ["x"], (0,), IntType(20), {"strides": list(strides),
                                                                                    "padding": pad},
                                       {"weight": w, "bias": b})], ["c"]), np.zeros((1, h, h, 2), np.int64))["c"]
        op = Op("c", "conv2d", ["x"], probe.shape[1:], IntType(20), {"strides": list(strides), "padding": pad},
                {"weight": w, "bias": b})
        net = Network("n", [Input("x", (h, h, 2), in_t)], [op], ["c"])
        bd = validate(net)["c"]
        oh, ow, co = probe.shape[1:]
        pt = max((oh - 1) * strides[0] + 3 - h, 0) // 2 if pad == "same" else 0
        pl = max((ow - 1) * strides[1] + 3 - h, 0) // 2 if pad == "same" else 0
        for i in range(oh):
            for j in range(ow):
                for o in range(co):
                    for want_hi in (True, False):
                        x = np.zeros((1, h, h, 2), dtype=np.int64)
                        for a in range(3):
                            for c in range(3):
                                r, s = i * strides[0] + a - pt, j * strides[1] + c - pl
                                if 0 <= r < h and 0 <= s < h:
                                    pos = w[a, c, :, o] > 0
                                    x[0, r, s] = np.where(pos == want_hi, in_t.hi, in_t.lo)
                        y = golden.run(net, x)["c"][0, i, j, o]
                        assert y == (bd.hi if want_hi else bd.lo)[i, j, o], (pad, strides, i, j, o)


def test_bdense_bounds_attained():
    wbits = np.array([[1, 0], [0, 0], [1, 1]], dtype=np.uint8)
    op = Op("b", "bdense", ["x"], (2,), IntType(3), {}, {"weight": wbits})
    net = Network("n", [Input("x", (3,), BinaryType())], [op], ["b"])
    bd = validate(net)["b"]
    assert bd.lo.tolist() == [-3, -3] and bd.hi.tolist() == [3, 3]
    for o in range(2):
        x = 2 * wbits[:, o].astype(np.int64) - 1
        assert golden.run(net, x[None])["b"][0, o] == 3
        assert golden.run(net, -x[None])["b"][0, o] == -3


# ---- validate errors -----------------------------------------------------------------

def dense_net(out_type=IntType(32), w=None, in_shape=(4,), out_shape=(3,), b=None):
    w = np.ones((4, 3), np.int64) * 100 if w is None else w
    b = np.zeros(w.shape[-1], np.int64) if b is None else b
    op = Op("fc1", "dense", ["x"], out_shape, out_type, {}, {"weight": w, "bias": b}, source="Dense(fc1)")
    return Network("n", [Input("x", in_shape, IntType(8))], [op], ["fc1"])


def test_too_narrow_dense_type():
    validate(dense_net(IntType(17)))  # [-4*128*100, 4*127*100] = [-51200, 50800] -> 17 bits signed
    with pytest.raises(NetworkError, match=r"fc1.*\[-51200, 50800\] needs 17 bits.*could overflow"):
        validate(dense_net(IntType(16)))
    with pytest.raises(NetworkError, match=r"op 'fc1' \(dense, from Dense\(fc1\)\)"):
        validate(dense_net(IntType(16)))
    # unsigned type for a result that can be negative
    with pytest.raises(NetworkError, match="could overflow"):
        validate(dense_net(IntType(30, False)))


@pytest.mark.parametrize("make_op,msg", [
    (lambda: Op("q", "requant", ["x"], (4,), IntType(8), {"lo": -200, "hi": 100},
                {"mult": np.array([3]), "shift": np.array([0])}), "could overflow"),
    (lambda: Op("c", "clip", ["x"], (4,), IntType(4), {"lo": 0, "hi": 100}), "could overflow"),
    (lambda: Op("t", "threshold", ["x"], (4,), IntType(2, False), {"step": 1},
                {"thresholds": np.array([[-5, 0, 5, 10]]), "base": np.zeros(4, np.int64),
                 "direction": np.ones(4, np.int64)}), "could overflow"),
    (lambda: Op("l", "lut", ["x"], (4,), IntType(4), {"in_lo": -128},
                {"table": np.arange(256) - 128}), "could overflow"),
    (lambda: Op("a", "argmax", ["x"], (1,), IntType(1, False)), "could overflow"),
    (lambda: Op("s", "add", ["x", "x"], (4,), IntType(8)), "could overflow"),
    (lambda: Op("m", "maxpool", ["x"], (2,), IntType(7), {"pool": [2], "strides": [2], "padding": "valid",
                                                            "dims": 1}), "could overflow"),
])
def test_narrow_types_of_other_ops(make_op, msg):
    op = make_op()
    in_shape = (4, 1) if op.kind == "maxpool" else (4,)
    if op.kind == "maxpool":
        op.shape = (2, 1)
    net = Network("n", [Input("x", in_shape, IntType(8))], [op], [op.name])
    with pytest.raises(NetworkError, match=f"op '{op.name}'.*{msg}"):
        validate(net)


def test_wide_enough_types_of_other_ops_pass():
    net = Network("n", [Input("x", (4,), IntType(8))], [
        Op("q", "requant", ["x"], (4,), IntType(8), {"lo": -128, "hi": 100},
           {"mult": np.array([1]), "shift": np.array([0])}),
        Op("t", "threshold", ["x"], (4,), IntType(3, False), {"step": 1},
           {"thresholds": np.array([[-5, 0, 5, 10]]), "base": np.zeros(4, np.int64), "direction": np.ones(4)}),
        Op("l", "lut", ["x"], (4,), IntType(8), {"in_lo": -128}, {"table": np.arange(256) - 128}),
        Op("a", "argmax", ["x"], (1,), IntType(2, False)),
        Op("w", "requant", ["x"], (4,), IntType(4), {"overflow": "wrap"},
           {"mult": np.array([1]), "shift": np.array([0])}),
    ], ["q", "t", "l", "a", "w"])
    validate(net)


@pytest.mark.parametrize("net_fn,msg", [
    (lambda: dense_net(w=np.ones((5, 3), np.int64)), r"fc1.*weight shape"),
    (lambda: dense_net(out_shape=(4,)), r"fc1.*declared shape \(4,\) but computes \(3,\)"),
    (lambda: dense_net(b=np.zeros(4, np.int64)), r"fc1.*bias shape"),
    (lambda: dense_net(w=np.ones((2, 2, 3), np.int64)), r"fc1.*weight shape"),
])
def test_shape_errors_dense(net_fn, msg):
    with pytest.raises(NetworkError, match=msg):
        validate(net_fn())


def test_shape_errors_binary_lut_argmax_conv_pool():
    wbits = np.ones((5, 3), np.uint8)
    cases = [
        (Input("x", (4,), BinaryType()), Op("b", "bdense", ["x"], (3,), IntType(8), {}, {"weight": wbits})),
        (Input("x", (5,), BinaryType()), Op("b", "bdense", ["x"], (7,), IntType(8), {}, {"weight": wbits})),
        (Input("x", (5,), BinaryType()),
         Op("b", "bdense", ["x"], (4,), BinaryType(), {},
            {"weight": wbits, "threshold": np.zeros(3, np.int64), "direction": np.ones(3, np.int64)})),
        (Input("x", (5, 5, 2), BinaryType()),
         Op("b", "bconv2d", ["x"], (5, 5, 3), IntType(8), {"strides": [1, 1], "padding": "valid"},
            {"weight": np.ones((3, 3, 2, 3), np.uint8)})),
        (Input("x", (5, 5, 2), BinaryType()),
         Op("b", "bconv2d", ["x"], (3, 3, 3), IntType(8), {"strides": [1, 1], "padding": "valid"},
            {"weight": np.ones((3, 3, 1, 3), np.uint8)})),
        (Input("x", (4,), IntType(3)), Op("l", "lut", ["x"], (5,), IntType(8), {"in_lo": -4},
                                          {"table": np.arange(8)})),
        (Input("x", (4,), IntType(3)), Op("a", "argmax", ["x"], (), IntType(2, False))),
        (Input("x", (3, 4), IntType(3)), Op("a", "argmax", ["x"], (1,), IntType(2, False))),
        (Input("x", (5, 5, 2), IntType(3)),
         Op("c", "conv2d", ["x"], (5, 5, 3), IntType(20), {"strides": [1, 1], "padding": "valid"},
            {"weight": np.ones((3, 3, 2, 3), np.int64), "bias": np.zeros(3, np.int64)})),
        (Input("x", (5, 5, 2), IntType(3)),
         Op("c", "conv2d", ["x"], (3, 3, 3), IntType(20), {"strides": [2, 2], "padding": "valid"},
            {"weight": np.ones((3, 3, 4, 3), np.int64), "bias": np.zeros(3, np.int64)})),
        (Input("x", (5, 5, 2), IntType(3)),
         Op("m", "maxpool", ["x"], (3, 3, 2), IntType(3), {"pool": [2, 2], "strides": [2, 2], "padding": "valid",
                                                             "dims": 2})),
        (Input("x", (6,), IntType(3)), Op("r", "reshape", ["x"], (4,), IntType(3), {"shape": [4]})),
        (Input("x", (2, 3), IntType(3)), Op("r", "reshape", ["x"], (3, 3), IntType(3), {"shape": [3, 3]})),
    ]
    for inp, op in cases:
        net = Network("n", [inp], [op], [op.name])
        with pytest.raises(NetworkError, match=f"op '{op.name}'"):
            validate(net)


def test_shape_errors_multi_input():
    t = IntType(8)
    net = Network("n", [Input("a", (4,), t), Input("b", (3,), t)],
                  [Op("s", "add", ["a", "b"], (4,), IntType(9))], ["s"])
    with pytest.raises(NetworkError, match="op 's'"):
        validate(net)
    net = Network("n", [Input("a", (2, 4), t), Input("b", (3, 4), t)],
                  [Op("k", "concat", ["a", "b"], (2, 8), t)], ["k"])
    with pytest.raises(NetworkError, match="op 'k'"):
        validate(net)
    net = Network("n", [Input("a", (4,), t), Input("b", (3,), t)],
                  [Op("k", "concat", ["a", "b"], (8,), t)], ["k"])
    with pytest.raises(NetworkError, match=r"op 'k'.*declared shape"):
        validate(net)


def test_structural_errors():
    t = IntType(8)
    base = [Op("c", "clip", ["x"], (4,), t, {"lo": 0, "hi": 5})]
    with pytest.raises(NetworkError, match=r"op 'z' \(softmax\).*unknown op kind"):
        validate(Network("n", [Input("x", (4,), t)], base + [Op("z", "softmax", ["c"], (4,), t)], ["z"]))
    with pytest.raises(NetworkError, match=r"duplicate tensor names \['c'\]"):
        validate(Network("n", [Input("x", (4,), t)], base + [Op("c", "clip", ["x"], (4,), t, {"lo": 0, "hi": 1})],
                         ["c"]))
    with pytest.raises(NetworkError, match=r"duplicate tensor names \['x'\]"):
        validate(Network("n", [Input("x", (4,), t)], [Op("x", "clip", ["x"], (4,), t, {"lo": 0, "hi": 1})], ["x"]))
    with pytest.raises(NetworkError, match=r"op 'd'.*\['later'\] are not defined"):
        validate(Network("n", [Input("x", (4,), t)],
                         [Op("d", "clip", ["later"], (4,), t, {"lo": 0, "hi": 5}),
                          Op("later", "clip", ["x"], (4,), t, {"lo": 0, "hi": 5})], ["d"]))
    with pytest.raises(NetworkError, match=r"op 'd'.*\['nope'\] are not defined"):
        validate(Network("n", [Input("x", (4,), t)], [Op("d", "clip", ["nope"], (4,), t, {"lo": 0, "hi": 5})],
                         ["d"]))
    with pytest.raises(NetworkError, match="output 'y' is not a tensor"):
        validate(Network("n", [Input("x", (4,), t)], base, ["y"]))
    with pytest.raises(NetworkError, match=r"op 'q'.*missing array 'shift'"):
        validate(Network("n", [Input("x", (4,), t)],
                         [Op("q", "requant", ["x"], (4,), t, {}, {"mult": np.array([1])})], ["q"]))
    with pytest.raises(NetworkError, match=r"op 'c'.*expects 1 input"):
        validate(Network("n", [Input("x", (4,), t)], [Op("c", "clip", ["x", "x"], (4,), t, {"lo": 0, "hi": 5})],
                         ["c"]))
    with pytest.raises(NetworkError, match=r"op 's'.*at least 2"):
        validate(Network("n", [Input("x", (4,), t)], [Op("s", "add", ["x"], (4,), t)], ["s"]))


def test_semantic_errors():
    t = IntType(8)
    x = [Input("x", (4,), t)]

    def rq(**kw):
        arrays = {"mult": np.array([kw.pop("mult", 1)]), "shift": np.array([0])}
        return Network("n", x, [Op("q", "requant", ["x"], (4,), kw.pop("type", t), kw, arrays)], ["q"])

    with pytest.raises(NetworkError, match="op 'q'.*rounding"):
        validate(rq(rounding="nearest"))
    with pytest.raises(NetworkError, match="op 'q'.*overflow must"):
        validate(rq(overflow="clamp"))
    with pytest.raises(NetworkError, match="op 'q'.*positive"):
        validate(rq(mult=0))
    with pytest.raises(NetworkError, match="op 'q'.*integer or minifloat"):
        validate(rq(type=BinaryType()))
    # add of different scales, including a minifloat whose raw unit differs though .scale is equal
    for tb in (IntType(8, True, (0.5,)), MinifloatType(4, 3, variant="ocp")):
        net = Network("n", [Input("a", (4,), t), Input("b", (4,), tb)],
                      [Op("s", "add", ["a", "b"], (4,), IntType(20))], ["s"])
        with pytest.raises(NetworkError, match="op 's'.*different scales"):
            validate(net)
    # same raw unit: int with scale 2^-9 plus an E4M3 minifloat is fine
    net = Network("n", [Input("a", (4,), IntType(8, True, (2.0 ** -9,))), Input("b", (4,), MinifloatType(4, 3))],
                  [Op("s", "add", ["a", "b"], (4,), IntType(19, True, (2.0 ** -9,)))], ["s"])
    validate(net)
    # thresholds not sorted, wrong shape
    for thr in (np.array([[3, 1]]), np.array([[1, 2]] * 3), np.array([1, 2])):
        net = Network("n", x, [Op("t", "threshold", ["x"], (4,), IntType(4), {},
                                  {"thresholds": thr, "base": np.zeros(4, np.int64),
                                   "direction": np.ones(4, np.int64)})], ["t"])
        with pytest.raises(NetworkError, match="op 't'.*thresholds"):
            validate(net)
    # lut too short / not covering the low end
    for table, lo in ((np.arange(255), -128), (np.arange(256), -127)):
        net = Network("n", x, [Op("l", "lut", ["x"], (4,), IntType(16), {"in_lo": lo}, {"table": table})], ["l"])
        with pytest.raises(NetworkError, match="op 'l'.*does not cover"):
            validate(net)
    # binary ops need binary inputs and bit weights; thresholded ones a binary output
    net = Network("n", x, [Op("b", "bdense", ["x"], (2,), IntType(8), {}, {"weight": np.ones((4, 2), np.uint8)})],
                  ["b"])
    with pytest.raises(NetworkError, match="op 'b'.*binary input"):
        validate(net)
    xb = [Input("x", (4,), BinaryType())]
    net = Network("n", xb, [Op("b", "bdense", ["x"], (2,), IntType(8), {}, {"weight": np.full((4, 2), 2)})], ["b"])
    with pytest.raises(NetworkError, match="op 'b'.*bits 0/1"):
        validate(net)
    net = Network("n", xb, [Op("b", "bdense", ["x"], (2,), IntType(8), {},
                               {"weight": np.ones((4, 2), np.uint8), "threshold": np.zeros(2, np.int64),
                                "direction": np.ones(2, np.int64)})], ["b"])
    with pytest.raises(NetworkError, match="op 'b'.*binary type"):
        validate(net)
    net = Network("n", xb, [Op("b", "bdense", ["x"], (2,), BinaryType(), {}, {"weight": np.ones((4, 2), np.uint8)})],
                  ["b"])
    with pytest.raises(NetworkError, match="op 'b'.*could overflow"):
        validate(net)
    # conv padding
    net = Network("n", [Input("x", (4, 4, 1), t)],
                  [Op("c", "conv2d", ["x"], (4, 4, 1), IntType(20), {"strides": [1, 1], "padding": "full"},
                      {"weight": np.ones((3, 3, 1, 1)), "bias": np.zeros(1)})], ["c"])
    with pytest.raises(NetworkError, match="op 'c'.*padding"):
        validate(net)
    # dense on per-channel scaled input
    net = Network("n", [Input("x", (2,), IntType(8, True, (0.5, 0.25)))],
                  [Op("d", "dense", ["x"], (1,), IntType(20), {}, {"weight": np.ones((2, 1)), "bias": np.zeros(1)})],
                  ["d"])
    with pytest.raises(NetworkError, match="op 'd'.*per-channel"):
        validate(net)


def test_op_bounds_computes_shapes_for_builders():
    """op_bounds is used by importers to infer an op's shape: it must not
    trust the op's (not yet known) declared shape."""
    xb = type_bounds(BinaryType(), (6, 6, 2))
    op = Op("b", "bconv2d", ["x"], (), IntType(8), {"strides": [2, 2], "padding": "valid"},
            {"weight": np.ones((2, 2, 2, 3), np.uint8)})
    assert op_bounds(op, [xb], [BinaryType()]).lo.shape == (3, 3, 3)
    op = Op("b", "bdense", ["x"], (), IntType(8), {}, {"weight": np.ones((2, 4), np.uint8)})
    assert op_bounds(op, [xb], [BinaryType()]).hi.shape == (6, 6, 4)
    x8 = type_bounds(IntType(8), (3, 5))
    assert op_bounds(Op("a", "argmax", ["x"], (), IntType(3, False)), [x8], [IntType(8)]).lo.shape == (3, 1)
    op = Op("l", "lut", ["x"], (), IntType(8), {"in_lo": -128}, {"table": np.arange(256)})
    assert op_bounds(op, [x8], [IntType(8)]).lo.shape == (3, 5)
    # a table that does not cover the input is an error, never a silently wrapped index
    for in_lo, size in ((-127, 256), (-128, 255)):
        op = Op("l", "lut", ["x"], (), IntType(8), {"in_lo": in_lo}, {"table": np.arange(size)})
        with pytest.raises(NetworkError, match="does not cover"):
            op_bounds(op, [x8], [IntType(8)])


def test_validate_returns_bounds_for_inputs_and_ops():
    net = dense_net()
    b = validate(net)
    assert set(b) == {"x", "fc1"}
    assert b["x"].min == -128 and b["x"].max == 127
    assert b["fc1"].min == -51200 and b["fc1"].max == 50800
    assert accumulator_bits(net) == {"fc1": 17}


def test_binary_outputs_must_not_hold_zero():
    t8, tb = IntType(8), BinaryType()

    def thr(base, step, dirn=1, thresholds=((0,),)):
        return Op("t", "threshold", ["x"], (2,), tb, {"step": step},
                  {"thresholds": np.array(thresholds * 2 if len(thresholds) == 1 else thresholds),
                   "base": np.array([base, base]), "direction": np.array([dirn, dirn])})

    bad = [
        (t8, thr(-1, 1)),  # levels -1, 0
        (t8, thr(1, 1, -1)),  # levels 1, 0
        (t8, Op("l", "lut", ["x"], (2,), tb, {"in_lo": -128}, {"table": np.where(np.arange(256) % 7, 1, 0)})),
        (tb, Op("c", "clip", ["x"], (2,), tb, {"lo": 0, "hi": 1})),
        (t8, Op("c", "clip", ["x"], (2,), tb, {"lo": -1, "hi": 1})),
        (IntType(1, False), Op("m", "maxpool", ["x"], (1, 1), tb, {"pool": [2], "strides": [2], "padding": "valid",
                                                           "dims": 1})),
        (t8, Op("a", "argmax", ["x"], (1,), tb)),
    ]
    for in_t, op in bad:
        shape = (2, 1) if op.kind == "maxpool" else (2,)
        net = Network("n", [Input("x", shape, in_t)], [op], [op.name])
        with pytest.raises(NetworkError, match=f"op '{op.name}'.*can produce 0"):
            validate(net)
    good = [
        (t8, thr(-1, 2)),
        (t8, thr(1, 2, -1)),
        (t8, thr(-1, 1, 1, ((200,),))),  # the level 0 is never reached by an int8 input
        (t8, Op("l", "lut", ["x"], (2,), tb, {"in_lo": -128}, {"table": np.where(np.arange(256) % 2, 1, -1)})),
        (tb, Op("c", "clip", ["x"], (2,), tb, {"lo": -1, "hi": 1})),
        (tb, Op("c", "clip", ["x"], (2,), tb, {"lo": 1, "hi": 5})),
        (tb, Op("r", "reshape", ["x"], (2, 1), tb, {"shape": [2, 1]})),
        (tb, Op("b", "bdense", ["x"], (3,), tb, {}, {"weight": np.ones((2, 3), np.uint8),
                                                      "threshold": np.zeros(3, np.int64),
                                                      "direction": np.ones(3, np.int64)})),
    ]
    for in_t, op in good:
        net = Network("n", [Input("x", (2,), in_t)], [op], [op.name])
        validate(net)
    op = Op("b", "bdense", ["x"], (3,), tb, {}, {"weight": np.ones((1, 3), np.uint8)})  # N = 1: y = +-1
    validate(Network("n", [Input("x", (1,), tb)], [op], ["b"]))
    net = Network("n", [Input("x", (2, 1), tb)],
                  [Op("m", "maxpool", ["x"], (1, 1), tb, {"pool": [2], "strides": [2], "padding": "same", "dims": 1}),
                   Op("k", "concat", ["m", "m"], (1, 2), tb)], ["k"])
    validate(net)
