"""Evaluate the shipped ECON-T style autoencoder checkpoint (no training).

EMD between input and reconstruction (median and 68 % interval) for the float
and the quantized model, the quantized encoder run through the qrtl golden
integer model and compared with QKeras bit for bit, a histogram PNG and
example reconstructions.

Run: .venv/bin/python examples/econ_autoencoder/evaluate.py [--n 10000] [--out build/econ_eval]
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from qat.econ import metrics as M  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=HERE)
    ap.add_argument("--n", type=int, default=10000, help="evaluation modules (data seed --seed)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("build/econ_eval"))
    args = ap.parse_args(argv)
    res = M.evaluate_checkpoint(args.checkpoint, n=args.n, seed=args.seed, out_dir=args.out)
    be = res["bit_exact"]
    if "float" in res:
        print(f"EMD float     : {M.fmt(res['float'])}")
    print(f"EMD quantized : {M.fmt(res['quantized'])}")
    print(f"EMD golden    : {M.fmt(res['golden'])}")
    print(f"golden == QKeras latent: {be['modules_equal']}/{be['modules']} modules, "
          f"{be['values_equal']}/{be['values']} values; {res['total_seconds']:.1f} s; files in {args.out}")
    return 0 if be["modules_equal"] == be["modules"] else 1


if __name__ == "__main__":
    sys.exit(main())
