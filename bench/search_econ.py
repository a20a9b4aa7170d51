"""Mixed-precision search study on the ECON-T style encoder (bench/models/econt_encoder.h5:
QConv2D 8x3x3/2 -> QDense 16, synthetic HGCAL-like showers from bench/models.py): searched weight
widths vs uniform 4/6/8-bit.  The encoder alone is searched and fine-tuned (regression onto the
shipped encoder's latent code); every configuration is scored by the physics metric, minus the median
EMD of the test modules reconstructed by a float decoder fitted to that configuration's latent code on
20000 other modules (bench/econ_emd.py).

    python bench/search_econ.py [--price fast|yosys] [--workers N]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import econ_data  # noqa: E402
from bench.search_study import ROOT, study_main  # noqa: E402


def make_data(model: Path) -> dict[str, np.ndarray]:
    """4000 synthetic 8x8 showers (seed 11), labelled with the shipped encoder's latent code: 3000 to
    train (the encoder's fine-tuning), 1000 to test; and 20000 others (seed 12) to fit the EMD decoder."""
    from qat.search import qkeras_model as qm

    x = econ_data(4000, seed=11).reshape(-1, 8, 8, 1).astype(np.float32)
    y = qm.outputs(qm.load(str(model)), x).astype(np.float32)  # the shipped encoder's latent code
    return {"x_train": x[:3000], "y_train": y[:3000], "x_test": x[3000:], "y_test": y[3000:],
            "x_decoder": econ_data(20000, seed=12).reshape(-1, 8, 8, 1).astype(np.float32)}


if __name__ == "__main__":
    study_main("econ", ROOT / "models" / "econt_encoder.h5", make_data, __doc__,
               metric=str(ROOT / "econ_emd.py") + ":neg_median_emd")
