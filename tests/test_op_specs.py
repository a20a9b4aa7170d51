"""One place per op: the op-spec registry and the backends' emitter registries.

* every registered op kind has a Verilog and an HLS C++ emitter;
* every spec is complete (meaning, golden, bounds; windowed kinds have a geometry);
* attribute defaults come from the spec (``Op.attr``), the same for every reader;
* a new op kind defined here, in a test, by one spec and one emitter per backend, is
  validated, executed by the golden model, saved and loaded, generated as Verilog and
  co-simulated bit for bit, and generated as HLS C++ and C-simulated bit for bit --
  nothing else in the package needed to change.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from hls.cpp import hls_cpp
from hls.rtl import verilog
from qat.ir import golden, netfile
from qat.ir.bounds import Bounds
from qat.ir.intervals import analyze
from qat.ir.network import Input, Network, NetworkError, Op
from qat.ir.spec import SPECS, OpSpec, op_kinds, register, spec_of, unregister
from qat.ir.types import IntType
from rtl_sim.cosim import run_cosim
from rtl_sim.csim import run_csim


def test_every_op_kind_has_an_emitter_per_backend():
    assert verilog.EMITTERS.missing() == [], "op kinds without Verilog"
    assert hls_cpp.EMITTERS.missing() == [], "op kinds without HLS C++"


def test_specs_are_complete():
    assert len(op_kinds()) >= 15
    for kind in op_kinds():
        s = spec_of(kind)
        assert s.kind == kind and s.meaning and callable(s.golden) and callable(s.bounds)
        if "padding" in s.attrs or "pool" in s.attrs:
            assert s.geometry is not None, kind


def test_attribute_defaults_come_from_the_spec():
    op = Op("r", "requant", ["x"], (4,), IntType(5, True), {}, {})
    assert op.attr("rounding") == "half_even" and op.attr("overflow") == "saturate"
    assert (op.attr("lo"), op.attr("hi")) == (-16, 15)  # the output type's range
    op.attrs["lo"] = -3
    assert op.attr("lo") == -3
    with pytest.raises(KeyError, match="in_lo"):
        Op("t", "lut", ["x"], (4,), IntType(5, True)).attr("in_lo")


def test_missing_required_attribute_is_named():
    x = Input("x", (4,), IntType(4, True))
    net = Network("n", [x], [Op("c", "clip", ["x"], (4,), IntType(4, True), {"lo": 0})], ["c"])
    with pytest.raises(NetworkError, match="missing attribute 'hi'"):
        analyze(net)


def test_bconv2d_padding_must_be_valid():
    """Windows come from one geometry: a padded binary convolution is refused, not built differently."""
    from qat.ir.types import BinaryType

    x = Input("x", (4, 4, 2), BinaryType())
    w = np.ones((3, 3, 2, 3), dtype=np.int64)
    op = Op("b", "bconv2d", ["x"], (4, 4, 3), IntType(6, True), {"strides": [1, 1], "padding": "same"},
            {"weight": w})
    with pytest.raises(NetworkError, match="'valid' windows only"):
        analyze(Network("n", [x], [op], ["b"]))


def test_maxpool_padding_must_be_smaller_than_the_pool():
    """Found by the fuzzer: pad >= pool makes windows of padding alone, which have no maximum (the golden
    model returned the pad value, the C++ 0, the RTL crashed).  Such a pool is refused by name."""
    x = Input("x", (2, 1, 5), IntType(5, False))

    def net(pad, pool):
        op = Op("mp", "maxpool", ["x"], (3, 1, 5), IntType(5, False),
                {"pool": pool, "strides": [1, 2], "dims": 2, "padding": pad})
        return Network("n", [x], [op], ["mp"])

    with pytest.raises(NetworkError, match=r"'mp'.*padding \[1, 0\] on spatial axis 1 must be smaller than the pool size 1"):
        analyze(net([[1, 1], [1, 0]], [2, 1]))
    analyze(net([[1, 1], [0, 0]], [2, 1]))  # pad < pool on both axes: accepted


# ---- a new op kind, defined only here -----------------------------------------

def _abs_golden(op, xs, types):
    return np.abs(xs[0])


def _abs_bounds(op, ins, types):
    lo, hi = ins[0].lo, ins[0].hi
    mag_lo = np.where((lo <= 0) & (hi >= 0), 0, np.minimum(abs(lo), abs(hi)))
    return Bounds(mag_lo.astype(object), np.maximum(abs(lo), abs(hi)).astype(object))


def _abs_rtl(self):  # an OpModule method: one element expression per output element
    outs = []
    for i in range(self.out.n):
        x = self.x(0, i)
        w = x.width + 1
        e = self.m.ext(x, w)
        lo, hi = int(self.out.lo[i]), int(self.out.hi[i])
        r = self.m.wire("abs", w, lo, hi, f"($signed({e}) < 0) ? -{e} : {e}", src=x)
        outs.append(self.m.fit(r, lo, hi))
    return outs


def _abs_cpp(self, op, ins, out):  # a _Gen method: writes the op's loop
    x = ins[0]
    v_t = f"ap_int<{x.value_width() + 1}>"
    self.emit(f"for (int i = 0; i < {out.n}; i++) {{")
    self.emit(f"const {v_t} v = {x.rd('i')};", 2)
    self.write_out(out, "i", "(v < 0) ? " + v_t + "(-v) : v", 2)
    self.emit("}")


@pytest.fixture
def abs_kind():
    assert "abs" not in SPECS
    register(OpSpec("abs", "y = |x|", golden=_abs_golden, bounds=_abs_bounds))
    verilog.EMITTERS.register("abs")(_abs_rtl)
    hls_cpp.EMITTERS.register("abs")(_abs_cpp)
    yield
    unregister("abs")
    verilog.EMITTERS.unregister("abs")
    hls_cpp.EMITTERS.unregister("abs")


def _abs_net() -> Network:
    x = Input("x", (6,), IntType(7, True))
    w = np.array([[3, -2, 0], [1, 1, -4], [-7, 2, 5], [0, -1, 1], [2, 2, -2], [-5, 0, 3]], dtype=np.int64)
    ops = [Op("d", "dense", ["x"], (3,), IntType(12, True), {}, {"weight": w, "bias": np.array([4, -9, 0])}),
           Op("a", "abs", ["d"], (3,), IntType(11, False), {}, {})]
    net = Network("absnet", [x], ops, ["a"])
    analyze(net)
    return net


def _edge_vectors(net: Network, n: int) -> np.ndarray:
    t = net.inputs[0].type
    rng = np.random.default_rng(5)
    x = rng.integers(t.lo, t.hi + 1, size=(n, 6))
    x[:4] = [[t.lo] * 6, [t.hi] * 6, [0] * 6, [t.lo, t.hi] * 3]
    return x


def test_new_op_kind_through_golden_file_rtl_and_cpp(abs_kind, tmp_path):
    net = _abs_net()
    x = _edge_vectors(net, 400)
    ref = np.abs(x @ net.op("d").arrays["weight"] + net.op("d").arrays["bias"])
    assert np.array_equal(golden.run(net, x)["a"], ref)
    # bounds are exact and the narrowest type is enforced: a 10-bit unsigned type could overflow
    assert (analyze(net)["a"].min, analyze(net)["a"].max) == (0, max(abs(analyze(net)["d"].min),
                                                                      analyze(net)["d"].max))
    netfile.save(net, tmp_path / "net")
    back = netfile.load(tmp_path / "net")
    assert np.array_equal(golden.run(back, x)["a"], ref)

    res = run_cosim(net, x, tmp_path / "cosim")
    assert res.ok and res.exact_vectors == res.vectors == len(x), res.describe()

    if shutil.which("g++"):
        proj = hls_cpp.generate(net)
        proj.write(tmp_path / "hls")
        cs = run_csim(net, tmp_path / "hls", [x])
        assert cs.ok and cs.vectors == len(x), cs.describe()


def test_unregistered_kind_is_refused_by_every_stage():
    x = Input("x", (3,), IntType(4, True))
    net = Network("n", [x], [Op("q", "mystery", ["x"], (3,), IntType(4, True))], ["q"])
    with pytest.raises(NetworkError, match="unknown op kind"):
        analyze(net)
    with pytest.raises(NetworkError, match="unknown op kind"):
        golden.run(net, np.zeros((1, 3), dtype=np.int64))
