"""Train the ECON-T style autoencoder shipped with qrtl (deterministic).

Synthetic HGCAL-like modules (qat/econ/data.py; training data seed 1,
validation seed 2, evaluation seed 3) -> two autoencoders trained with the
telescope loss and early stopping (qat/econ/training.py):

* the QKeras encoder with the published quantization + a float decoder (QAT),
* a float encoder of the same shape + a float decoder (reference).

Writes next to this file (or to --out):

  econ_encoder.h5                     quantized encoder, what `qrtl convert` / `qrtl synth` take
  econ_encoder.json, econ_encoder_weights.h5   the same (hls4ml example-model layout)
  econ_decoder.h5                     its float decoder (off-detector; evaluation only)
  float_encoder.h5 (+ .json, _weights.h5), float_decoder.h5   the float reference
  econ_train.json, float_train.json   training configuration, history, time
  metrics.json                        EMD (median, 68 % interval) float vs quantized vs golden,
                                      bit-exact count of golden vs QKeras latents
  emd_hist.png, reconstructions.png, example_modules.png
  sample_inputs.npy                   100 evaluation modules (8x8x1 float32) for `qrtl predict`

Run: .venv/bin/python examples/econ_autoencoder/train.py   (about 3 minutes on 2 cores)
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a source checkout without installing

from qat.econ import data as D  # noqa: E402
from qat.econ import metrics as M  # noqa: E402
from qat.econ import training as T  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: next to this script)")
    ap.add_argument("--n-train", type=int, default=40000)
    ap.add_argument("--n-val", type=int, default=8000)
    ap.add_argument("--n-eval", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="TensorFlow seed (weights, shuffling)")
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    tr = D.generate(args.n_train, seed=1)
    va = D.generate(args.n_val, seed=2)
    t_data = time.perf_counter() - t0
    print(f"data: {len(tr)} training + {len(va)} validation modules in {t_data:.1f} s")

    results = {}
    for prefix, quantized in (("float", False), ("econ", True)):
        cfg = T.TrainConfig(quantized=quantized, n_train=args.n_train, n_val=args.n_val, epochs=args.epochs,
                            patience=args.patience, seed=args.seed)
        r = T.train(cfg, tr, va, verbose=2)
        print(f"{prefix}: {r.epochs_run} epochs (best {r.best_epoch}), val loss {min(r.history['val_loss']):.6f}, "
              f"{r.seconds:.1f} s")
        info = {"config": cfg.to_dict(), "history": r.history, "seconds": r.seconds, "epochs_run": r.epochs_run,
                "best_epoch": r.best_epoch}
        T.save_checkpoint(out, prefix, r.encoder, r.decoder, info)
        results[prefix] = info

    ev = D.generate(args.n_eval, seed=3)
    np.save(out / "sample_inputs.npy", ev.x[:100])
    kinds = [np.flatnonzero(ev.kind == k) for k in (1, 2, 0)]
    D.plot_modules(out / "example_modules.png", ev, [int(k[j]) for k in kinds for j in range(2)])
    # evaluate the saved files (what a user gets), not the in-memory models
    res = M.evaluate_checkpoint(out, n=args.n_eval, seed=3, out_dir=out)
    res["training_seconds"] = {k: v["seconds"] for k, v in results.items()}
    res["data_seconds"] = t_data
    res["wall_seconds"] = time.perf_counter() - t0
    (out / "metrics.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    be = res["bit_exact"]
    print(f"EMD float     : {M.fmt(res['float'])}")
    print(f"EMD quantized : {M.fmt(res['quantized'])}")
    print(f"EMD golden    : {M.fmt(res['golden'])}  (identical to quantized: {res['golden_emd_equal']})")
    print(f"golden == QKeras latent: {be['modules_equal']}/{be['modules']} modules, "
          f"{be['values_equal']}/{be['values']} values")
    print(f"total {res['wall_seconds']:.1f} s; files in {out}")
    return 0 if be["modules_equal"] == be["modules"] else 1


if __name__ == "__main__":
    sys.exit(main())
