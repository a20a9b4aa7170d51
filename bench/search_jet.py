"""Mixed-precision search study on the jet-tagger-shaped MLP (bench/models/jet_tagger.h5,
16-64-32-32-5, synthetic 5-class data as bench/models.py): searched widths vs uniform 4/6/8-bit.

    python bench/search_jet.py [--price fast|yosys] [--workers N]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import jet_data  # noqa: E402
from bench.search_study import ROOT, study_main  # noqa: E402


def make_data(model: Path) -> dict[str, np.ndarray]:
    """6000 synthetic jets (seed 7): 4000 to train, 2000 to test."""
    x, y = jet_data(6000, seed=7)
    return {"x_train": x[:4000], "y_train": y[:4000], "x_test": x[4000:], "y_test": y[4000:]}


if __name__ == "__main__":
    study_main("jet", ROOT / "models" / "jet_tagger.h5", make_data, __doc__)
