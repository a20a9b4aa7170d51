"""Minifloat tensors in the Verilog generator: bus codes, decode into the exact
integer datapath, requant rounding to the minifloat grid, code-level maxpool,
clip, argmax, reshape and concat.

* hls.rtl.minifloat_code: encode/decode round trip over every code of every
  format, ml_dtypes agreement (OCP FP8), grid and error cases;
* lint (verilator -Wall) of every network below in every pipeline mode;
* co-simulation, bit-exact against the golden model (the compiled Verilator
  harness rtl_sim.fast_sim for bulk vectors; cocotb with every layer traced,
  minifloat layers compared as codes, for the MLP and the AXI4-Stream wrapper):
  one requant per format (E4M3
  plain/OCP/FNUZ, E5M2 plain/OCP, E3M2, E2M3, E2M1, custom biases) and per
  rounding mode, fed with grid points, exact ties and near-ties in every
  binade (subnormal and normal), values beyond the largest finite value and
  random values; a minifloat-input MLP (dense -> requant to E5M2 -> dense ->
  requant to int); a minifloat CNN (conv2d -> E4M3 FNUZ -> maxpool -> clip ->
  concat -> reshape, minifloat output bus); argmax over codes; pipeline none and
  depth:N; the AXI4-Stream wrapper with a minifloat output.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import rtl_nets
from hls.rtl.minifloat_code import (MinifloatCodeError, code_bits, decode, decode_one, encode, encode_one, finite_codes,
                                grid)
from hls.rtl.verilog import RTLError, generate
from qat.ir import golden, intervals
from qat.ir.network import Input, Network, Op
from qat.ir.types import IntType, MinifloatType
from rtl_sim.cosim import CosimError, run_cosim
from rtl_sim.fast_sim import run_fast
from test_rtl import lint

E4M3 = MinifloatType(4, 3)
E4M3_OCP = MinifloatType(4, 3, variant="ocp")
E4M3_FNUZ = MinifloatType(4, 3, variant="fnuz")
E5M2 = MinifloatType(5, 2)
E5M2_OCP = MinifloatType(5, 2, variant="ocp")
E3M2 = MinifloatType(3, 2)
E2M3 = MinifloatType(2, 3)
E2M1 = MinifloatType(2, 1)
E4M3_B4 = MinifloatType(4, 3, bias=4)
E3M2_B0 = MinifloatType(3, 2, bias=0, variant="ocp")
E5M2_FNUZ = MinifloatType(5, 2, variant="fnuz")
E3M2_NEG = MinifloatType(3, 2, bias=-4)  # unit 2^3: the bank requant shifts left
FORMATS = [E4M3, E4M3_OCP, E4M3_FNUZ, E5M2, E5M2_OCP, E5M2_FNUZ, E3M2, E2M3, E2M1, E4M3_B4, E3M2_B0, E3M2_NEG]


# ---- codes ----------------------------------------------------------------------------

@pytest.mark.parametrize("t", FORMATS, ids=lambda t: t.describe())
def test_code_roundtrip_every_code(t):
    codes = finite_codes(t)
    raw = decode(codes, t)
    neg_zero = 1 << (code_bits(t) - 1)
    for c, r in zip(codes, raw):
        assert encode_one(int(r), t) == (0 if c == neg_zero else c)  # -0 decodes to 0, encodes as +0
    g = grid(t)
    assert set(int(v) for v in raw) == set(int(v) for v in g)  # the codes hold exactly the format's values
    assert g[0] == -t.max_units and g[-1] == t.max_units and 0 in g and 1 in g  # smallest subnormal
    assert np.array_equal(decode(encode(g, t), t), g)
    # value order = code order for positive codes (what code comparison relies on)
    pos = [c for c in codes if c < neg_zero]
    assert list(decode(pos, t)) == sorted(decode(pos, t))
    # every code beyond the largest finite one (NaN/inf) is rejected, and nothing else
    assert len(codes) == (1 << code_bits(t)) - {"plain": 0, "ocp": 2 if t.exp_bits == 4 and t.bits == 8 else
                                                  8 if t.bits == 8 else 0, "fnuz": 1}[t.variant]


def test_code_errors_and_layout():
    assert encode_one(0, E4M3) == 0 and encode_one(1, E4M3) == 1 and encode_one(-1, E4M3) == 0x81
    assert encode_one(8, E4M3) == 0b0_0001_000  # first normal: (2^3 + 0) << 0
    assert encode_one(E4M3.max_units, E4M3) == 0x7F and encode_one(E4M3_OCP.max_units, E4M3_OCP) == 0x7E
    assert decode_one(0x80, E4M3) == 0
    with pytest.raises(MinifloatCodeError, match="not on the"):
        encode_one(17 * 2, E4M3)  # 34 = 100010b: 5 significant bits
    with pytest.raises(MinifloatCodeError, match="exceeds"):
        encode_one(E4M3_OCP.max_units + 1, E4M3_OCP)
    with pytest.raises(MinifloatCodeError, match="NaN"):
        decode_one(0x7F, E4M3_OCP)
    with pytest.raises(MinifloatCodeError, match="NaN"):
        decode_one(0x80, E4M3_FNUZ)
    assert decode_one(0x7F, E4M3_OCP, strict=False) == 15 << 14


def test_codes_agree_with_ml_dtypes():
    import ml_dtypes

    for t, dt in ((E4M3_OCP, ml_dtypes.float8_e4m3fn), (E5M2_OCP, ml_dtypes.float8_e5m2),
                  (E4M3_FNUZ, ml_dtypes.float8_e4m3fnuz), (E5M2_FNUZ, ml_dtypes.float8_e5m2fnuz)):
        codes = np.array(finite_codes(t), dtype=np.uint8)
        want = codes.view(dt).astype(np.float64)
        got = np.ldexp(decode(codes, t).astype(np.float64), t.unit_exp)
        assert np.array_equal(got, want), t.describe()


# ---- networks ---------------------------------------------------------------------------

class Builder(rtl_nets.Builder):
    """rtl_nets.Builder, except that an op's bounds are computed with its declared type
    (a requant to a minifloat rounds to the grid and saturates; an integer one does not)."""

    def add(self, name: str, kind: str, inputs: list[str], t=None, scale=None, **kw) -> str:
        if t is None:
            return super().add(name, kind, inputs, t, scale, **kw)
        attrs = kw.pop("attrs", {})
        arrays = {k: np.asarray(v) for k, v in kw.pop("arrays", {}).items()}
        assert not kw, kw
        in_t = [self.types[i] for i in inputs]
        op = Op(name, kind, list(inputs), (), t, attrs, arrays, source=f"test {kind}")
        b = intervals.op_bounds(op, [self.bounds[i] for i in inputs], in_t)
        op.shape = tuple(b.lo.shape)
        self.ops.append(op)
        self.bounds[name], self.types[name] = b, t
        return name


ROUND_EXTRA = [(E4M3, r) for r in rtl_nets.ROUNDINGS if r != "half_even"] + [(E2M1, "floor"), (E5M2, "half_up"),
                                                                           (E3M2_B0, "toward_zero")]
BANK = [(t, "half_even") for t in FORMATS] + ROUND_EXTRA
IN_BITS = 40


def bank_shift(t: MinifloatType) -> int:
    """Shift putting the input's unit at a quarter of the smallest subnormal."""
    return 2 - t.unit_exp


def format_bank(bank: list | None = None) -> Network:
    """x (int40, one element per requant) -> for each format/rounding k: a dense picking
    elements k and k+7 (one-hot weights, pure wiring) -> requant to the format (element k:
    mult 1 and the designed vectors; the other: an odd multiplier and another shift) ->
    requant back to an integer (decodes the codes) -> concat of all."""
    bank = BANK if bank is None else bank
    n = len(bank)
    nb = Builder("mf_bank", (n,), IntType(IN_BITS), seed=21)
    backs = []
    for k, (t, rounding) in enumerate(bank):
        pick = np.zeros((n, 2), dtype=np.int64)
        pick[k, 0] = pick[(k + 7) % n, 1] = 1
        sel = nb.add(f"s{k}", "dense", ["x"], IntType(IN_BITS), arrays={"weight": pick, "bias": np.zeros(2, np.int64)})
        mult = np.array([1, int(nb.rng.integers(1, 40)) * 2 + 1])
        shift = np.array([bank_shift(t), bank_shift(t) + int(nb.rng.integers(-3, 4))])
        q = nb.add(f"q{k}", "requant", [sel], t, attrs={"rounding": rounding},
                   arrays={"mult": mult, "shift": shift})
        b = nb.add(f"b{k}", "requant", [q], IntType(t.max_units.bit_length() + 2),
                   attrs={"rounding": "half_even", "overflow": "saturate"}, arrays={"mult": 1, "shift": 0})
        backs.append(b)
    nb.add("out", "concat", backs)
    return nb.network("out")


def edge_values(t: MinifloatType, rng) -> list[int]:
    """Input integers (units of a quarter smallest subnormal) hitting grid points, exact
    ties, near-ties and quarter points in every binade, the saturation region and zero."""
    g = [int(v) * 4 for v in grid(t) if v >= 0]
    vals = list(g)
    for a, b in zip(g, g[1:]):
        mid = (a + b) // 2
        vals += [mid, mid - 1, mid + 1, (3 * a + b) // 4, (a + 3 * b) // 4]
    top = g[-1]
    step = g[-1] - g[-2]
    vals += [top + step // 2, top + step // 2 - 1, top + step, top * 2, top * 2 + 3, 1, 2, 3]
    vals = sorted(set(vals))
    if len(vals) > 600:  # E5M2 has many binades: keep every small value and a random sample of the rest
        vals = vals[:200] + sorted(rng.choice(vals[200:], 400, replace=False).tolist())
    return vals + [-v for v in vals if v]


def bank_vectors(rng, bank: list | None = None) -> np.ndarray:
    bank = BANK if bank is None else bank
    n = len(bank)
    lo, hi = -(1 << (IN_BITS - 1)), (1 << (IN_BITS - 1)) - 1
    cols = [edge_values(t, rng) for t, _ in bank]
    rows = max(len(c) for c in cols)
    x = rng.integers(lo, hi + 1, size=(rows + 200, n)) >> rng.integers(0, IN_BITS - 2, size=(rows + 200, n))
    for k, c in enumerate(cols):
        x[:len(c), k] = rng.permutation(c)
    x[0], x[1], x[2] = lo, hi, 0
    return x.astype(np.int64)


def minifloat_vectors(t: MinifloatType, shape: tuple[int, ...], n: int, rng) -> np.ndarray:
    """Raw minifloat inputs: zero, +-max, +-smallest subnormal, then random finite codes."""
    g = grid(t)
    edges = [np.full(shape, v) for v in (0, t.max_units, -t.max_units, 1, -1)]
    body = rng.choice(g, size=(n,) + shape)
    return np.concatenate([np.stack(edges), body]).astype(np.int64)


def mlp() -> Network:
    """E4M3 input -> dense (raw E4M3 weights) -> requant to E5M2 -> dense -> requant to int8."""
    nb = Builder("mf_mlp", (8,), E4M3, seed=22)
    w1 = nb.rng.choice(grid(MinifloatType(3, 2)), size=(8, 6))
    nb.add("d1", "dense", ["x"], arrays={"weight": w1, "bias": nb.bias(6, 3000)})
    nb.add("m1", "requant", ["d1"], E5M2, attrs={"rounding": "half_even"},
           arrays={"mult": np.array([1, 3, 5, 1, 7, 1]), "shift": np.array([10, 12, 14, 16, 20, 24])})
    nb.add("d2", "dense", ["m1"], arrays={"weight": nb.weights((6, 4), -5, 5), "bias": nb.bias(4, 1000)})
    span = max(abs(nb.bounds["d2"].min), nb.bounds["d2"].max)
    nb.add("out", "requant", ["d2"], IntType(8), attrs={"rounding": "half_away", "overflow": "saturate"},
           arrays={"mult": 1, "shift": max(0, span.bit_length() - 9)})
    return nb.network("out")


def cnn() -> Network:
    """E2M3 input -> conv2d 3x3 same -> requant to E4M3 FNUZ -> maxpool 2x2 same (codes) ->
    clip to [0, 16] -> concat with the maxpool -> reshape: a minifloat output bus."""
    nb = Builder("mf_cnn", (5, 5, 2), E2M3, seed=23)
    nb.add("c1", "conv2d", ["x"], attrs={"strides": [1, 1], "padding": "same"},
           arrays={"weight": nb.weights((3, 3, 2, 3), -9, 9), "bias": nb.bias(3, 50)})
    nb.add("m1", "requant", ["c1"], E4M3_FNUZ, attrs={"rounding": "half_even"},
           arrays={"mult": np.array([1, 3, 1]), "shift": np.array([5, 6, 8])})
    nb.add("p1", "maxpool", ["m1"], E4M3_FNUZ, attrs={"pool": [2, 2], "strides": [2, 2], "padding": "same",
                                                      "dims": 2})
    sixteen = 16 << (-E4M3_FNUZ.unit_exp)  # 16.0 in raw units
    nb.add("r1", "clip", ["p1"], E4M3_FNUZ, attrs={"lo": 0, "hi": sixteen})
    nb.add("cat", "concat", ["r1", "p1"], E4M3_FNUZ)
    rtl_nets._reshape(nb, "out", "cat", (int(np.prod(nb.shape("cat"))),))
    return nb.network("out")


def argmax_net() -> Network:
    """E3M2 input (4, 5) -> maxpool 1D (codes) -> argmax over codes."""
    nb = Builder("mf_argmax", (4, 5), E3M2, seed=24)
    nb.add("p", "maxpool", ["x"], E3M2, attrs={"pool": [2], "strides": [1], "padding": "valid", "dims": 1})
    nb.add("out", "argmax", ["p"], IntType(4, False))
    return nb.network("out")


def mf_to_mf() -> Network:
    """E5M2 input -> requant straight to E2M3 (minifloat to minifloat, per-channel shifts)."""
    nb = Builder("mf_to_mf", (6,), E5M2_OCP, seed=25)
    nb.add("out", "requant", ["x"], E2M3, attrs={"rounding": "half_even"},
           arrays={"mult": np.array([1, 1, 3, 1, 5, 1]), "shift": np.array([14, 12, 16, 10, 18, 13])})
    return nb.network("out")


NETS = {"bank": format_bank, "mlp": mlp, "cnn": cnn, "argmax": argmax_net, "mf_to_mf": mf_to_mf}


def assert_exact(res, n: int) -> None:
    assert res.ok, res.describe()
    assert res.vectors == n and res.exact_vectors == n and res.first_wrong_layer is None, res.describe()


# ---- lint ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(NETS))
def test_lint_clean(name, tmp_path):
    net = NETS[name]()
    for pipeline in ("layer", "none", "depth:1", "depth:2"):
        d = generate(net, pipeline=pipeline)
        for top in (d.top, d.manifest["axis_top"]):
            assert lint(d, tmp_path / pipeline.replace(":", "_"), top) == "", (name, pipeline, top)


def test_manifest_and_bus_width():
    d = generate(cnn())
    man = d.manifest
    assert man["input"]["element_bits"] == 6 and man["input"]["signed"] is False
    assert man["input"]["minifloat"] == {"exp_bits": 2, "man_bits": 3, "bias": 1, "variant": "plain"}
    assert man["output"]["element_bits"] == 8 and man["output"]["minifloat"]["variant"] == "fnuz"
    assert man["ops"]["m1"]["minifloat"]["bias"] == 8 and "minifloat" not in man["ops"]["c1"]
    assert man["input"]["width"] == 5 * 5 * 2 * 6
    assert "minifloat codes [sign | 2-bit exponent | 3-bit mantissa]" in d.files[f"{d.top}.v"]


# ---- co-simulation ---------------------------------------------------------------------------

def test_cosim_format_bank(tmp_path):
    """Every format and rounding mode, bit-exact codes on every layer."""
    net = format_bank()
    rng = np.random.default_rng(31)
    x = bank_vectors(rng)
    env = golden.run(net, x, keep_all=True)
    for k, (t, _) in enumerate(BANK):  # the designed vectors reach zero, +-max and the smallest subnormal
        q = env[f"q{k}"][:, 0]
        assert {0, 1, -1, t.max_units, -t.max_units} <= set(q.tolist()), t.describe()
    res = run_fast(net, x)
    assert_exact(res, len(x))


def test_bank_vectors_hit_ties_in_every_binade():
    """The designed column of each requant holds exact ties at the subnormal binade and
    at every normal binade (so the RTL's rounding position is checked everywhere)."""
    rng = np.random.default_rng(31)
    for t, _ in BANK:
        vals = set(edge_values(t, rng))
        g = [int(v) * 4 for v in grid(t) if v >= 0]
        ties = sorted((a + b) // 2 for a, b in zip(g, g[1:]))
        if len(g) < 100:
            assert set(ties) <= vals and {-v for v in ties} <= vals, t.describe()
        else:  # sampled (E5M2): every tie of the subnormal and first normal binades, many above
            assert set(ties[:2 << t.man_bits]) <= vals and len(set(ties) & vals) > 80, t.describe()


@pytest.mark.parametrize("name,pipeline", [("mlp", "layer"), ("cnn", "depth:3"), ("argmax", "none"),
                                           ("mf_to_mf", "depth:1")])
def test_cosim_minifloat_networks(name, pipeline, tmp_path):
    net = NETS[name]()
    rng = np.random.default_rng(32)
    x = minifloat_vectors(net.inputs[0].type, tuple(net.inputs[0].shape), 400, rng)
    env = golden.run(net, x, keep_all=True)
    for op in net.ops:
        assert len(np.unique(np.asarray(env[op.name]).reshape(len(x), -1))) > 1, f"{op.name} never changes"
    d = generate(net, pipeline=pipeline)
    if name == "mlp":  # cocotb: valid gaps, a reset in flight, every layer (codes) traced
        res = run_cosim(net, x, tmp_path, "verilator", design=d, trace_layers=True, seed=4)
    else:  # bulk bit-exactness: the compiled harness
        res = run_fast(net, x, d)
    assert_exact(res, len(x))
    assert res.latency == d.latency


SUB_BANK = [(E4M3_OCP, "half_even"), (E5M2, "half_up"), (E2M1, "floor"), (E3M2_B0, "toward_zero"),
            (E3M2_NEG, "half_away")]


def test_cosim_pipeline_depth_bank(tmp_path):
    """The rounding logic registered after every level (depth:1) and fully combinational (none)."""
    net = format_bank(SUB_BANK)
    rng = np.random.default_rng(33)
    x = bank_vectors(rng, SUB_BANK)[::2]
    for pipeline in ("depth:1", "none"):
        d = generate(net, pipeline=pipeline)
        res = run_fast(net, x, d)
        assert_exact(res, len(x))


def test_cosim_axis_minifloat_output(tmp_path):
    net = mf_to_mf()
    x = minifloat_vectors(net.inputs[0].type, (6,), 300, np.random.default_rng(34))
    res = run_cosim(net, x, tmp_path, "verilator", axis=True, seed=5, trace_layers=True)
    assert_exact(res, len(x))


def test_cosim_rejects_inputs_off_the_grid(tmp_path):
    net = mf_to_mf()
    with pytest.raises(CosimError, match="not on the"):
        run_cosim(net, np.full((2, 6), 2 ** 4 + 1), tmp_path)


# ---- what the generator refuses -------------------------------------------------------------

def _net(ops, in_t=IntType(8), shape=(2,)) -> Network:
    return Network("bad", [Input("x", shape, in_t)], ops, [ops[-1].name])


def test_rejected():
    w = {"weight": np.array([[1, 0], [0, 1]]), "bias": np.array([0, 0])}
    with pytest.raises(RTLError, match="not on a minifloat grid"):  # dense result typed as a minifloat
        generate(_net([Op("d", "dense", ["x"], (2,), E4M3, {}, w)], E4M3))
    with pytest.raises(RTLError, match="differ in minifloat format"):
        generate(_net([Op("p", "reshape", ["x"], (2,), E4M3_B4, {"shape": [2]})], E4M3))
    with pytest.raises(RTLError, match="without mantissa"):
        generate(_net([Op("q", "requant", ["x"], (2,), MinifloatType(4, 0), {}, {"mult": np.array(1),
                                                                                 "shift": np.array(0)})]))
    with pytest.raises(RTLError, match="clip bound"):
        generate(_net([Op("c", "clip", ["x"], (2,), E4M3, {"lo": 0, "hi": 17 * 2})], E4M3))
    for weights in ("registers", "tmr"):
        with pytest.raises(RTLError, match="minifloat"):
            generate(mlp(), weights=weights)


def test_integer_networks_unchanged_by_the_minifloat_path():
    """No minifloat keys or code wires in integer designs."""
    d = generate(rtl_nets.cnn2d())
    assert "minifloat" not in str(d.manifest)
    assert not any("dm" in line and "case" in line for f in d.files.values() for line in f.splitlines())


def test_golden_rounding_is_on_the_grid():
    """Sanity of what the RTL is compared with: every golden requant result encodes."""
    rng = np.random.default_rng(35)
    net = format_bank()
    env = golden.run(net, bank_vectors(rng), keep_all=True)
    for k, (t, _) in enumerate(BANK):
        encode(env[f"q{k}"], t)
    assert Fraction(int(E4M3.max_units), 1 << -E4M3.unit_exp) == 480
