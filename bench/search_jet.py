"""Mixed-precision search study on the jet-tagger-shaped MLP (bench/models/jet_tagger.h5,
16-64-32-32-5, synthetic 5-class data as bench/models.py): searched widths vs uniform 4/6/8-bit.

    python bench/search_jet.py [--price fast|yosys] [--workers N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import jet_data  # noqa: E402
from bench.search_study import ROOT, run_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--price", choices=("fast", "yosys"), default="fast")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    data = ROOT / "build" / "search_jet" / "data.npz"
    data.parent.mkdir(parents=True, exist_ok=True)
    x, y = jet_data(6000, seed=7)
    np.savez(data, x_train=x[:4000], y_train=y[:4000], x_test=x[4000:], y_test=y[4000:])
    run_study("jet", str(ROOT / "models" / "jet_tagger.h5"), data, [3, 4, 5, 6, 8], a.price, a.epochs, a.workers)


if __name__ == "__main__":
    main()
