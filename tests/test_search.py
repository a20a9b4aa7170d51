"""qrtl search: the ILP on hand-made tables, and a tiny search end to end on a local Ray instance
(tiny QKeras MLP, two widths, fast prices; verification with co-simulation and Yosys), its cache
on a second run, and the same results on one and two Ray workers."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from qat.search.errors import SearchError
from qat.search.ilp import allocate
from qrtl.cli import main


# ---- ILP ---------------------------------------------------------------------------------------

def _brute(s, c, fixed, budget=None, max_loss=None, allowed=None):
    best = None
    L, W = s.shape
    for choice in itertools.product(range(W), repeat=L):
        if allowed is not None and not all(allowed[i, k] for i, k in enumerate(choice)):
            continue
        ss = sum(s[i, k] for i, k in enumerate(choice))
        cc = fixed + sum(c[i, k] for i, k in enumerate(choice))
        if budget is not None and cc <= budget:
            best = ss if best is None else min(best, ss)
        if max_loss is not None and ss <= max_loss:
            best = cc if best is None else min(best, cc)
    return best


def test_ilp_matches_brute_force_on_hand_made_tables():
    s = np.array([[3.0, 1.0, 0.0], [5.0, 2.0, 0.5], [0.9, 0.3, 0.1]])
    c = np.array([[10.0, 20.0, 30.0], [40.0, 80.0, 120.0], [7.0, 9.0, 30.0]])
    a = allocate(s, c, 5.0, budget_luts=100)
    assert a.choice == (2, 0, 1) and a.luts == 5 + 30 + 40 + 9 and a.sensitivity == pytest.approx(5.3)
    a = allocate(s, c, 5.0, max_loss=3.0)
    assert a.choice == (2, 1, 0) and a.luts == 5 + 30 + 80 + 7 and a.sensitivity == pytest.approx(2.9)
    rng = np.random.default_rng(0)
    for t in range(30):
        s = rng.uniform(0, 2, (3, 4))
        c = rng.integers(5, 60, (3, 4)).astype(float)
        allowed = rng.random((3, 4)) > 0.2
        allowed[:, 0] = True
        b = float(rng.integers(40, 150))
        want = _brute(s, c, 3.0, budget=b, allowed=allowed)
        if want is None:
            with pytest.raises(SearchError):
                allocate(s, c, 3.0, budget_luts=b, allowed=allowed)
        else:
            assert allocate(s, c, 3.0, budget_luts=b, allowed=allowed).sensitivity == pytest.approx(want)
        x = float(rng.uniform(0.5, 4))
        want = _brute(s, c, 3.0, max_loss=x, allowed=allowed)
        if want is not None:
            assert allocate(s, c, 3.0, max_loss=x, allowed=allowed).luts == pytest.approx(want)


def test_ilp_infeasible_budget_names_the_smallest_feasible_one():
    s = np.array([[3.0, 1.0], [5.0, 2.0]])
    c = np.array([[10.0, 20.0], [40.0, 80.0]])
    with pytest.raises(SearchError, match=r"^--budget-luts 54 is infeasible: the smallest feasible budget is 55 LUTs"):
        allocate(s, c, 5.0, budget_luts=54)
    assert allocate(s, c, 5.0, budget_luts=55).choice == (0, 0)
    with pytest.raises(SearchError, match=r"^--max-loss 2.9 is infeasible: the smallest feasible budget is 3 "):
        allocate(s, c, 5.0, max_loss=2.9)
    allowed = np.array([[False, True], [True, True]])  # layer 0's cheap width cannot be built
    with pytest.raises(SearchError, match="smallest feasible budget is 65 LUTs"):
        allocate(s, c, 5.0, budget_luts=60, allowed=allowed)


# ---- a tiny search end to end -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny QKeras MLP (8 -> 4 -> 3, dyadic int4 recipe) trained on three Gaussian blobs."""
    import tensorflow as tf

    from qat.recipes.qkeras_recipes import _fit, build_mlp

    d = tmp_path_factory.mktemp("search")
    rng = np.random.default_rng(0)
    centers = rng.uniform(0.2, 0.8, (3, 8))
    y = rng.integers(0, 3, 600)
    x = np.clip(centers[y] + rng.normal(0, 0.12, (600, 8)), 0, 0.99).astype(np.float32)
    np.savez(d / "data.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    tf.keras.utils.set_random_seed(0)
    m = build_mlp(8, (4,), 3, preset="dyadic_int4", name="tiny")
    _fit(m, x[:400], y[:400], 4, 1e-2, 32, 0)
    m.save(d / "tiny.h5", save_format="h5", include_optimizer=False)
    return d


def _args(d, out, *extra):
    return ["search", str(d / "tiny.h5"), "--data", str(d / "data.npz"), "--widths", "3,6", "--price", "fast",
            "--epochs", "1", "--sens-samples", "200", "--hessian-probes", "2", "--pareto-points", "3",
            "--random", "50", "--quiet", "-o", str(out), *extra]


def _search_part(rep: dict) -> dict:
    """What must not depend on the number of workers or on the cache."""
    part = {k: rep[k] for k in ("layers", "widths", "base", "fixed_luts", "table", "configurations")}
    part["chosen"] = {k: v for k, v in rep["chosen"].items() if k not in ("synthesized_luts", "predicted_over_synthesized")}
    return part


@pytest.fixture(scope="module")
def first_run(tiny):
    out = tiny / "out1"
    assert main(_args(tiny, out, "--budget-luts", "1000000", "--workers", "1")) == 0
    return json.loads((out / "search.json").read_text())


def test_tiny_search_end_to_end(tiny, first_run):
    rep, out = first_run, tiny / "out1"
    assert rep["layers"] == ["fc0", "logits"] and rep["widths"] == [3, 6]
    assert len(rep["table"]) == 4 and all(r["luts"] > 0 for r in rep["table"])
    # a huge budget: the least sensitive width everywhere
    for n in rep["layers"]:
        rows = {r["width"]: r["loss_increase"] for r in rep["table"] if r["layer"] == n}
        assert rows[rep["chosen"]["widths"][n]] == min(rows.values())
    v = rep["verification"]
    assert v["ok"] and v["golden_vs_framework"]["exact_vectors"] == 200 and v["cosim"]["mismatches"] == 0
    assert rep["chosen"]["synthesized_luts"] > 0
    assert {p["name"] for p in rep["configurations"]} >= {"uniform 3-bit", "uniform 6-bit", "chosen"}
    assert (out / "best.h5").is_file() and (out / "pareto.png").stat().st_size > 1000
    assert "| configuration | fc0 | logits |" in (out / "pareto.md").read_text()
    from qat.search.qkeras_model import load, widths_of

    assert widths_of(load(str(out / "best.h5"))) == rep["chosen"]["widths"]


def test_second_run_comes_from_the_cache(tiny, first_run, monkeypatch):
    out = tiny / "out1"
    assert main(_args(tiny, out, "--budget-luts", "1000000", "--workers", "1")) == 0
    rep = json.loads((out / "search.json").read_text())
    assert rep["jobs_run"] == 0 and first_run["jobs_run"] > 0
    assert _search_part(rep) == _search_part(first_run) and rep["verification"] == first_run["verification"]
    # a changed generator: every price is computed again (no stale cached price), nothing else is
    monkeypatch.setattr("qat.search.run.code_fingerprint", lambda *sources: "another generator")
    assert main(_args(tiny, out, "--budget-luts", "1000000", "--workers", "1", "--no-verify")) == 0
    rep = json.loads((out / "search.json").read_text())
    assert rep["jobs_run"] == len(rep["table"]) + 1  # each layer at each width, and the fixed ops
    assert _search_part(rep) == _search_part(first_run)


def test_fast_price_counts_the_other_modules_as_yosys_does_in_the_whole_network(tiny, first_run):
    """The fast price's Yosys count of each module outside the constant-matrix arithmetic (requantizers,
    ReLU) equals that module's LUTs in the whole-network synthesis (hierarchy kept)."""
    from hls.engine.cost import estimates
    from hls.rtl.verilog import generate
    from qat.search.cache import JobCache
    from qat.search.price import fast_price
    from qat.search.qkeras_model import load, to_network

    design = generate(to_network(load(str(tiny / "out1" / "best.h5"))))
    fp = fast_price(design, "pynq-z2", JobCache(tiny / "out1" / "cache"))
    whole = first_run["verification"]["synthesis"]["per_module"]
    matrix = {f for f, _, _ in estimates(design.files)}
    others = {f: luts for f, luts in fp["modules"].items() if f not in matrix}
    assert matrix and any(others.values())
    assert others == {f: float(whole.get(f[:-2], {}).get("LUT", 0)) for f in others}
    assert fp["luts"] == sum(fp["modules"].values())


def test_code_fingerprint_follows_the_generator_source(tmp_path):
    from qat.search.cache import code_fingerprint

    (tmp_path / "gen" / "__pycache__").mkdir(parents=True)
    (tmp_path / "gen" / "a.py").write_text("X = 1\n")
    fp = code_fingerprint(("gen",), tmp_path)
    (tmp_path / "gen" / "__pycache__" / "a.py").write_text("stale copy\n")
    (tmp_path / "gen" / "notes.txt").write_text("not source\n")
    assert code_fingerprint(("gen",), tmp_path) == fp
    (tmp_path / "gen" / "a.py").write_text("X = 2\n")
    assert code_fingerprint(("gen",), tmp_path) != fp
    (tmp_path / "gen" / "a.py").write_text("X = 1\n")
    (tmp_path / "gen" / "b.v").write_text("module b; endmodule\n")
    assert code_fingerprint(("gen",), tmp_path) != fp


def test_one_and_two_workers_give_identical_results(tiny, first_run):
    import shutil

    out = tiny / "out2"  # its own cache: every job runs again, on two workers; only the Yosys LUTs of the
    # small modules (a pure function of their text) are shared, to spare their synthesis
    shutil.copytree(tiny / "out1" / "cache" / "module_luts", out / "cache" / "module_luts")
    assert main(_args(tiny, out, "--budget-luts", "1000000", "--workers", "2", "--no-verify")) == 0
    rep = json.loads((out / "search.json").read_text())
    assert rep["jobs_run"] > 0 and rep["verification"] is None
    assert _search_part(rep) == _search_part(first_run)


def test_infeasible_budget_and_unreachable_address_are_one_line(tiny, first_run, capsys):
    out = tiny / "out1"
    assert main(_args(tiny, out, "--budget-luts", "3")) == 1
    err = capsys.readouterr().err.strip()
    least = int(np.ceil(first_run["fixed_luts"] + sum(
        min(r["luts"] for r in first_run["table"] if r["layer"] == n) for n in first_run["layers"])))
    assert err == (f"qrtl: error: --budget-luts 3 is infeasible: the smallest feasible budget is {least} LUTs "
                   f"(every layer at its cheapest width)")
    assert main(_args(tiny, tiny / "out3", "--budget-luts", "100", "--ray-address", "127.0.0.1:1")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qrtl: error: --ray-address 127.0.0.1:1: no Ray cluster reachable") and "\n" not in err


def test_own_metric_reaches_every_evaluation(tiny, first_run):
    """--metric file.py:NAME replaces accuracy in every evaluation (base, configurations, fine-tuned
    choice), sees the data file's other arrays, and names the Pareto column; nothing else changes."""
    with np.load(tiny / "data.npz") as z:
        np.savez(tiny / "data_m.npz", **{k: z[k] for k in z.files}, bonus=np.array(0.25))
    (tiny / "metric.py").write_text("import numpy as np\n\n\ndef acc_plus_bonus(predict, data):\n"
                                    "    hit = np.argmax(predict(data['x_test']), axis=1) == data['y_test']\n"
                                    "    return float(np.mean(hit)) + float(data['bonus'])\n")
    out = tiny / "out_m"
    args = _args(tiny, out, "--budget-luts", "1000000", "--workers", "1", "--no-verify",
                 "--metric", str(tiny / "metric.py:acc_plus_bonus"), "--cache", str(tiny / "out1" / "cache"))
    args[args.index("--data") + 1] = str(tiny / "data_m.npz")
    assert main(args) == 0
    rep = json.loads((out / "search.json").read_text())
    assert rep["metric_name"] == "acc_plus_bonus" and first_run["metric_name"] == "accuracy"
    want = {c["name"]: c["metric"] + 0.25 for c in first_run["configurations"]}
    assert {c["name"]: c["metric"] for c in rep["configurations"]} == pytest.approx(want, abs=1e-9)
    assert rep["base"]["test"]["metric"] == pytest.approx(first_run["base"]["test"]["metric"] + 0.25, abs=1e-9)
    assert rep["chosen"]["metric"] == pytest.approx(first_run["chosen"]["metric"] + 0.25, abs=1e-9)
    assert rep["chosen"]["widths"] == first_run["chosen"]["widths"]
    assert "acc_plus_bonus" in (out / "pareto.md").read_text()


@pytest.mark.parametrize("spec, msg", [
    ("{d}/none.py:f", "{d}/none.py: no such metric file"),
    ("{d}/metric.py:missing", "{d}/metric.py: no function 'missing'"),
    ("{d}/broken.py:f", "{d}/broken.py: cannot load the metric file (SyntaxError"),
    ("{d}/metric.py", "--metric must be file.py:NAME"),
])
def test_bad_metric_is_one_line(tiny, capsys, spec, msg):
    (tiny / "metric.py").write_text("def acc_plus_bonus(predict, data):\n    return 0.0\n")
    (tiny / "broken.py").write_text("def f(:\n")
    assert main(_args(tiny, tiny / "out_bad", "--budget-luts", "100", "--metric", spec.format(d=tiny))) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qrtl: error: " + msg.format(d=tiny)) and "\n" not in err, err


# ---- Brevitas models (the same jobs, in process) -------------------------------------------------

def test_brevitas_layers_are_requantized_priced_and_written(tmp_path):
    from qat.search import brevitas_model as bm
    from qat.search import jobs as J
    from qat.search.frameworks import ModelRef, materialize, ref_of

    (tmp_path / "model.py").write_text("from qat.recipes import brevitas_recipes as br\n\n\n"
                                       "def net():\n    return br.mlp(8, (4,), 3, 'int4', seed=0)\n")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    x = np.clip(rng.uniform(0.2, 0.8, (3, 8))[y] + rng.normal(0, 0.12, (120, 8)), 0, 0.99).astype(np.float32)
    data = dict(x_train=x, y_train=y, x_test=x, y_test=y, x_sens=x, y_sens=y)
    ref = ref_of(f"{tmp_path / 'model.py'}:net", (8,))
    m = materialize(ref)
    assert bm.layers(m) == ["fc0", "fc_out"] and bm.widths_of(m) == {"fc0": 4, "fc_out": 4}
    assert bm.widths_of(bm.with_widths(m, {"fc0": 2})) == {"fc0": 2, "fc_out": 4}
    m2 = J.measured(ref, data, "fc0", 2)
    assert m2["loss"] != J.base(ref, data)["sens"]["loss"] and m2["weight_error"] > 0 and m2["n_weights"] == 32
    assert np.isfinite(J.hessian(ref, data, "fc0", 2, 0)["trace"])
    p = J.price(ref, "fc0", 3, ["fc0", "fc_out"], "pynq-z2", "fast", None)
    assert p["ops"] == ["fc0", "act0"] and p["luts"] > 0
    tuned = J.finetune(ref, data, {"fc0": 3, "fc_out": 5}, 1, 1e-2, 0)
    best = ModelRef("brevitas", tuned["model_bytes"], ref.source, ref.name, ref.input_shape)
    files = bm.write_best(best, tmp_path)
    assert files[0] == "best.py:best"
    from qat.importers.convert import load_torch_module

    again = load_torch_module(f"{tmp_path / 'best.py'}:best")
    assert bm.widths_of(again) == {"fc0": 3, "fc_out": 5}
    assert np.array_equal(bm.outputs(again, x), bm.outputs(materialize(best), x))
