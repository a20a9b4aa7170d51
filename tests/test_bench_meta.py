"""bench/run_meta.py records the real commit of this repository, and the bench scripts that use it
(and the shared study command line, bench.search_study.study_main) still import and answer --help."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_meta import dirty_paths, run_meta  # noqa: E402

SCRIPTS = ("folding", "streaming", "run_bench", "design_space", "sim_speed", "cmvm_speed", "mutants",
           "digits.run_digits", "search_study", "search_jet", "search_econ")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def test_run_meta_is_this_repository():
    before = _git("rev-parse", "--short", "HEAD").strip()
    meta = run_meta()
    after = _git("rev-parse", "--short", "HEAD").strip()  # another process may commit meanwhile
    assert meta["git_commit"] in (before, after)
    assert set(meta) == {"date_utc", "git_commit", "git_dirty_paths", "python", "cpus", "machine",
                         "load_average_1min"}
    assert len(meta["date_utc"]) == len("2026-01-31 23:59") and meta["cpus"] >= 1
    assert isinstance(meta["load_average_1min"], float) and meta["python"].startswith("3.")
    assert meta["git_dirty_paths"] == sorted(meta["git_dirty_paths"])


def test_dirty_paths_excludes_the_prefix():
    assert all(not p.startswith("bench/") for p in dirty_paths("bench/"))
    tracked = set(dirty_paths(untracked=False))
    untracked = {ln[3:] for ln in _git("status", "--porcelain").splitlines() if ln.startswith("??")}
    assert not tracked & untracked


def test_bench_scripts_import():
    code = "; ".join(f"import bench.{s}" for s in SCRIPTS)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, timeout=120)


@pytest.mark.parametrize("study", ["jet", "econ"])
def test_study_help(study):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / f"search_{study}.py"), "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--price" in out.stdout and "--workers" in out.stdout and "--epochs" in out.stdout


def test_econ_emd_metric_decodes_and_measures_the_emd():
    """bench/econ_emd.py (the ECON-T study's --metric): its decoder with given weights reproduces a
    module exactly (EMD 0) or spreads it evenly (minus that module's EMD to the even spread); the fitted
    decoder of an informative latent code beats that of a constant code, loaded as qrtl search loads it."""
    import numpy as np

    from bench.econ_emd import decode, fractions
    from bench.models import econ_data
    from qat.econ.metrics import emd
    from qat.search.metric import metric_ref, score

    x = econ_data(1, seed=3)  # (1, 8, 8, 1)
    frac = fractions(x)
    z = np.ones((1, 16))
    exact = [np.zeros((16, 4)), np.zeros(4), np.zeros((4, 48)), np.log(np.maximum(frac[0], 1e-300))]
    assert float(emd(frac, decode(z, exact))[0]) == pytest.approx(0.0, abs=1e-9)
    even = decode(z, exact[:3] + [np.zeros(48)])
    assert np.allclose(even, 1 / 48) and float(emd(frac, even)[0]) > 0.5

    data = {"x_train": econ_data(300, seed=4), "x_test": econ_data(100, seed=5)}
    ref = metric_ref(str(ROOT / "bench" / "econ_emd.py") + ":neg_median_emd")
    informative = score(ref, lambda v: fractions(v)[:, :16], data)  # 16 of the 48 cells
    constant = score(ref, lambda v: np.ones((len(v), 16)), data)  # the decoder learns the mean module
    assert constant < informative < 0
