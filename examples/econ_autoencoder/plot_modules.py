"""Quick look at the synthetic HGCAL-like modules: a PNG of example modules.

Run: .venv/bin/python examples/econ_autoencoder/plot_modules.py [-o modules.png] [--seed 3] [--n 8]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from qat.econ import data as D  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=Path("example_modules.png"))
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--n", type=int, default=6, help="modules to draw (cycling EM, hadronic, pile-up)")
    args = ap.parse_args(argv)
    batch = D.generate(max(200, args.n * 10), seed=args.seed)
    kinds = [list(np.flatnonzero(batch.kind == k)) for k in (1, 2, 0)]
    idx = [int(kinds[i % 3][i // 3]) for i in range(args.n)]
    D.plot_modules(args.output, batch, idx)
    print(f"{args.output}: {args.n} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
