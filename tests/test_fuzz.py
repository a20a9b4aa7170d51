"""Whole-chain fuzzing (issue #17): random valid integer networks (tests/fuzz/netgen.py) ->
golden == HLS C-sim == RTL bit for bit, lint clean, file format round trip; regressions the
fuzzer found (tests/fuzz/regressions/) replayed.  Long campaigns: ``make fuzz N=...``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hyp_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz import check  # noqa: E402
from fuzz.check import network_digest  # noqa: E402
from fuzz.campaign import combine, run  # noqa: E402
from fuzz.netgen import GENERATORS, batches, uncovered_kinds, vectors  # noqa: E402
from qat.ir import intervals, netfile  # noqa: E402
from qat.ir.network import Input, Network, Op  # noqa: E402
from qat.ir.spec import op_kinds  # noqa: E402
from qat.ir.types import IntType  # noqa: E402

REGRESSIONS = sorted(p for p in check.REGRESSIONS.iterdir() if (p / netfile.GRAPH_FILE).exists()) \
    if check.REGRESSIONS.is_dir() else []


def test_every_op_kind_has_a_generator():
    assert uncovered_kinds() == [], f"op kinds the fuzzer cannot generate: {uncovered_kinds()}"
    assert set(GENERATORS) <= set(op_kinds())


@hyp_seed(2024)
@settings(max_examples=25, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches(6))
def test_generated_networks_are_valid_and_golden_within_bounds(b):
    """No builds: every generated network validates, its golden values lie within the proven
    bounds, and the file format round-trips (hypothesis shrinks a failure here)."""
    intervals.validate(b.net)
    x = vectors(b.net, 40)
    assert check.check_bounds(b.net, x) is None
    for p in b.parts:
        assert check.check_netfile(p.net, x[:8]) is None


def test_generator_covers_every_op_kind_and_mode():
    """Across a fixed-seed sample: every op kind, rounding and overflow mode, minifloat variant,
    padding kind, fused/unfused binary layers, unequal depths, forced argmax ties, extreme weights."""
    kinds, feats = set(), set()

    @hyp_seed(5)
    @settings(max_examples=60, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(batches(8))
    def collect(b):
        for p in b.parts:
            kinds.update(op.kind for op in p.net.ops)
            feats.update(p.feat)
            feats.update(f"type_{type(t).__name__}" for t in p.net.tensor_types().values())

    collect()
    assert kinds == set(op_kinds()), f"never generated: {set(op_kinds()) - kinds}"
    want = {f"round_{r}" for r in ("half_even", "half_up", "half_away", "floor", "toward_zero")} | {
        "overflow_saturate", "overflow_wrap", "pad_same", "pad_valid", "pad_explicit", "binary_fused_threshold",
        "binary_popcount_out", "add_unequal_depth", "concat_unequal_depth", "argmax_forced_ties", "weights_extreme",
        "weights_zero", "per_channel_scale", "requant_intwide", "type_MinifloatType", "type_BinaryType"}
    assert want <= feats, f"never exercised: {sorted(want - feats)}"
    assert any(f.startswith("requant_to_ocp") for f in feats) and any(f.startswith("requant_to_fnuz") for f in feats)


def test_short_campaign(tmp_path):
    """Two fixed-seed batches of random networks through golden, C-sim (g++) and the RTL
    (Verilator harness + lint): no finding.  (Builds are cached: reruns are quick.)"""
    st = run(networks=16, batch=8, seed_=3, n_vectors=120, out_json=tmp_path / "fuzz.json", do_shrink=False,
             save=False, log=lambda *a: None)
    assert st["networks"] == 16 and st["batches"] == 2  # distinct batches (repeats are skipped, not counted)
    assert st["findings"] == [], st["findings"]
    # campaigns run side by side (make fuzz JOBS=2) merge into one report: counts add, minutes do not
    doc = json.loads((tmp_path / "fuzz.json").read_text())
    two = combine([doc, dict(doc, seed=4, findings=[{"engine": "rtl", "part": 0}], mismatches=1)], "test")
    assert two["networks"] == 32 and two["ops"] == 2 * doc["ops"] and two["minutes"] == doc["minutes"]
    assert two["seeds"] == [3, 4] and two["mismatches"] == 1 and two["findings"][0]["seed"] == 4
    assert two["op_kinds_covered"] == {k: 2 * v for k, v in doc["op_kinds_covered"].items()}


def test_network_digest_tells_networks_apart():
    """The campaign counts distinct networks: equal content, equal digest; one weight changed, another."""
    from rtl_nets import cnn2d

    a, b = cnn2d(), cnn2d()
    assert network_digest(a) == network_digest(b)
    fc = next(op for op in b.ops if op.name == "fc")
    fc.arrays["weight"] = fc.arrays["weight"].copy()
    fc.arrays["weight"][0, 0] += 1
    assert network_digest(a) != network_digest(b)


def test_checks_can_fail(tmp_path):
    """The batch check sees a wrong output: a batch whose golden reference is mutated (a
    sub-network's weights changed after its RTL/C++ were generated) reports that sub-network."""
    from fuzz.netgen import wrap

    nets = []
    for k in range(2):
        inp = Input("x", (3,), IntType(4))
        ops = [Op(f"n{k}_d", "dense", ["x"], (2,), IntType(10), {},
                  {"weight": np.array([[1, -2], [3, 4], [-5, 6]]), "bias": np.array([k, -k])})]
        nets.append((Network(f"n{k}", [inp], ops, [ops[0].name]), set()))
    b = wrap(nets, inp)
    x = vectors(b.net, 30)
    want = check.golden_rows(b.net, x)
    got = check.run_csim_rows(b.net, x)
    assert check.first_mismatch(want, got) is None
    b.net.op("n1_d").arrays["bias"] = np.array([1, 0])  # the reference changes, the generated code does not
    want2 = check.golden_rows(b.net, x)
    cols = [c for a, z, _ in b.parts[1].cols for c in range(a, z)]
    assert check.first_mismatch(want2[:, cols], got[:, cols]) is not None
    cols0 = [c for a, z, _ in b.parts[0].cols for c in range(a, z)]
    assert check.first_mismatch(want2[:, cols0], got[:, cols0]) is None


def test_netfile_keeps_scalar_arrays(tmp_path):
    """Found by the fuzzer: a scalar (0-d) requant mult/shift came back as shape (1,)."""
    net = Network("t", [Input("x", (2,), IntType(4))],
                  [Op("r", "requant", ["x"], (2,), IntType(3), {}, {"mult": np.array(3), "shift": np.array(1)})], ["r"])
    assert check.check_netfile(net, np.array([[1, -8], [7, 3]])) is None
    netfile.save(net, tmp_path / "n")
    assert netfile.load(tmp_path / "n").ops[0].arrays["mult"].shape == ()


OPEN = sorted(p for p in (check.REGRESSIONS / "open").iterdir() if (p / netfile.GRAPH_FILE).exists()) \
    if (check.REGRESSIONS / "open").is_dir() else []


if OPEN:  # none today: every finding so far is fixed and replayed by test_regression
    @pytest.mark.xfail(strict=True, reason="open fuzz finding (not fixed yet): move the directory up once it passes")
    @pytest.mark.parametrize("d", OPEN, ids=lambda p: p.name)
    def test_open_finding(d):
        """Mismatches the fuzzer found that are not fixed yet (tests/fuzz/regressions/open/)."""
        net, x = check.load_regression(d)
        assert check.check_network(net, x) == []


@pytest.mark.parametrize("d", REGRESSIONS, ids=lambda p: p.name)
def test_regression(d):
    """A shrunk network the fuzzer once found wrong: golden == C-sim == RTL, lint clean, round trip."""
    net, x = check.load_regression(d)
    assert check.check_network(net, x) == []
