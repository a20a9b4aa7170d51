"""Evaluation of the ECON-T style autoencoder: energy mover's distance (EMD)
and the bit-exact check of the quantized encoder against the golden model.

EMD: optimal transport (POT, ``ot.emd2``, exact network simplex) between
the normalised input distribution y = u / sum(u) and the normalised
reconstruction (the decoder's softmax output, renormalised in float64), over
the 48 trigger cells, ground metric = Euclidean distance between the cell
centres of :func:`qat.econ.data.cell_centres` (cm).  So EMD is in cm: the
mean distance the energy has to move.  Reported as the median and the
central 68 % interval (16th and 84th percentiles) over the evaluation set.

Models:

* float: float encoder + float decoder (trained together);
* quantized: the QKeras encoder + its float decoder (trained together, QAT);
* golden: the quantized encoder converted by ``qat.importers.from_qkeras`` and run by
  the golden integer model ``qat.ir.golden.run``, decoded by the same float
  decoder.  Its latent codes must equal QKeras's bit for bit, so its EMD equals
  the quantized model's.
"""
from __future__ import annotations

import os
import time

import numpy as np

from qat.econ import data as D

# POT probes every array backend it finds (TensorFlow, PyTorch, JAX, CuPy) at import:
# seconds of start-up and log noise for nothing; qrtl only uses its numpy backend.
for _k in ("POT_BACKEND_DISABLE_TENSORFLOW", "POT_BACKEND_DISABLE_PYTORCH", "POT_BACKEND_DISABLE_JAX",
           "POT_BACKEND_DISABLE_CUPY"):
    os.environ.setdefault(_k, "1")


def ground_metric(params: D.EconDataParams = D.DEFAULT_PARAMS) -> np.ndarray:
    """(48, 48) Euclidean distances between cell centres (cm)."""
    c = D.cell_centres(params)
    return np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))


def _normalise(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if np.any(a < 0):
        raise ValueError("EMD needs non-negative distributions")
    s = a.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, a / np.where(s > 0, s, 1.0), np.nan)


def emd(y: np.ndarray, yh: np.ndarray, metric: np.ndarray | None = None) -> np.ndarray:
    """EMD per module between (N, 48) distributions (each row normalised to sum 1
    first; a row with zero sum gives NaN)."""
    import ot

    m = ground_metric() if metric is None else np.asarray(metric, dtype=np.float64)
    a, b = (np.ascontiguousarray(_normalise(np.atleast_2d(v))) for v in (y, yh))  # POT needs C order
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        if np.isnan(a[i]).any() or np.isnan(b[i]).any():
            continue
        out[i] = ot.emd2(a[i], b[i], m)
    return out


def summary(values: np.ndarray) -> dict:
    """Median and central 68 % interval (16th, 84th percentiles) of finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0, "median": float("nan"), "lo68": float("nan"), "hi68": float("nan"), "mean": float("nan")}
    lo, med, hi = np.percentile(v, [16, 50, 84])
    return {"n": int(v.size), "median": float(med), "lo68": float(lo), "hi68": float(hi), "mean": float(v.mean())}


def fmt(s: dict) -> str:
    return f"{s['median']:.3f} cm [68%: {s['lo68']:.3f}, {s['hi68']:.3f}]"


# ---- models ------------------------------------------------------------------------------------

def predict(model, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    return np.asarray(model.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size, verbose=0))


def reconstruct(encoder, decoder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(latent, reconstruction (N, 48)) for inputs x (N, 8, 8, 1)."""
    z = predict(encoder, x)
    return z, predict(decoder, z).reshape(len(x), -1)


def golden_latent(net, x: np.ndarray) -> np.ndarray:
    """The golden integer model's latent (real values, float64) for real inputs x."""
    from qat.ir import golden
    from qat.importers.input_quant import quantize_real

    raw = quantize_real(net.inputs[0], np.asarray(x, dtype=np.float32))
    out = net.outputs[0]
    return golden.dequantize(net.op(out).type, golden.run(net, raw)[out])


def bit_exact(encoder, x: np.ndarray, net=None) -> dict:
    """Compare QKeras's encoder output with the golden model's, value for value (``==``)."""
    from qat.importers.from_qkeras import import_qkeras

    if net is None:
        net = import_qkeras(encoder)
    zq = predict(encoder, x).astype(np.float64)
    zg = golden_latent(net, x)
    eq = zq.reshape(len(x), -1) == zg.reshape(len(x), -1)
    return {"modules": int(len(x)), "modules_equal": int(eq.all(axis=1).sum()), "values": int(eq.size),
            "values_equal": int(eq.sum()), "net": net, "latent_qkeras": zq, "latent_golden": zg}


def evaluate(batch: D.ModuleBatch, quantized: tuple | None = None, float_model: tuple | None = None,
             net=None, hist_png: str | None = None, modules_png: str | None = None) -> dict:
    """EMD of each model on ``batch`` (+ golden bit-exact check of the quantized encoder).

    ``quantized`` / ``float_model``: (encoder, decoder) pairs.  Returns a JSON-able
    dict: per model the EMD summary, and ``bit_exact`` counts; the per-module EMD
    arrays are under ``"_emd"`` (not JSON)."""
    y = batch.y
    x = batch.x
    res: dict = {"modules": len(batch), "_emd": {}}
    t0 = time.perf_counter()
    recon_q = None
    if float_model is not None:
        _, r = reconstruct(*float_model, x)
        e = emd(y, r)
        res["float"] = summary(e)
        res["_emd"]["float"] = e
    if quantized is not None:
        enc, dec = quantized
        be = bit_exact(enc, x, net)
        recon_q = predict(dec, be["latent_qkeras"].astype(np.float32)).reshape(len(x), -1)
        e = emd(y, recon_q)
        res["quantized"] = summary(e)
        res["_emd"]["quantized"] = e
        recon_g = predict(dec, be["latent_golden"].astype(np.float32)).reshape(len(x), -1)
        eg = emd(y, recon_g)
        res["golden"] = summary(eg)
        res["_emd"]["golden"] = eg
        res["bit_exact"] = {k: be[k] for k in ("modules", "modules_equal", "values", "values_equal")}
        res["golden_emd_equal"] = bool(np.array_equal(e, eg))
        res["_net"] = be["net"]
    res["seconds"] = time.perf_counter() - t0
    if hist_png:
        series = {}
        notes = []
        for k, label in (("float", "float"), ("quantized", "quantized (QKeras enc)")):
            if k in res["_emd"]:
                series[label] = res["_emd"][k]
                s = res[k]
                notes.append(f"{k[:5]}: {s['median']:.2f} [{s['lo68']:.2f}, {s['hi68']:.2f}]")
        hi = max(np.nanpercentile(v, 99) for v in series.values())
        bins = np.linspace(0.0, max(1.0, float(np.ceil(hi))), 41)
        _plot_hist(hist_png, series, bins, notes, len(batch))
    if modules_png and recon_q is not None:
        kinds = [np.flatnonzero(batch.kind == k) for k in (1, 2, 0)]
        idx = [int(k[j]) for k in kinds for j in range(2) if len(k) > j]
        D.plot_modules(modules_png, batch, idx, recon=recon_q, title="input vs quantized-encoder reconstruction")
    return res


def _plot_hist(path, series, bins, notes, n) -> None:
    from qat.econ import plots

    plots.histogram(path, series, bins, "EMD (cm)", f"EMD input vs reconstruction, {n} modules",
                    ["median [68% interval]:"] + notes + ["last bin: overflow"])


def public(res: dict) -> dict:
    """``res`` without the non-JSON entries."""
    return {k: v for k, v in res.items() if not k.startswith("_")}


def evaluate_checkpoint(directory, n: int = 10000, seed: int = 3, out_dir=None, with_float: bool = True,
                        prefix: str = "econ", float_prefix: str = "float",
                        params: D.EconDataParams = D.DEFAULT_PARAMS) -> dict:
    """Evaluate a saved checkpoint (``{prefix}_encoder.h5`` + ``{prefix}_decoder.h5`` and, if present
    and ``with_float``, the float pair) on ``n`` generated modules (data seed ``seed``).

    With ``out_dir``: writes ``emd_hist.png``, ``reconstructions.png`` and ``metrics.json`` there.
    Returns the JSON-able result (EMD summaries, bit-exact counts, timings)."""
    import json
    from pathlib import Path

    from qat.econ.training import load_checkpoint

    d = Path(directory)
    t0 = time.perf_counter()
    q = load_checkpoint(d, prefix)
    f = load_checkpoint(d, float_prefix) if with_float and (d / f"{float_prefix}_encoder.h5").is_file() else None
    batch = D.generate(n, seed, params)
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    res = evaluate(batch, quantized=q, float_model=f, hist_png=str(out / "emd_hist.png") if out else None,
                   modules_png=str(out / "reconstructions.png") if out else None)
    pub = public(res)
    rel = os.path.relpath(d)
    pub.update({"checkpoint": rel if not rel.startswith("..") else str(d), "data_seed": seed, "total_seconds": time.perf_counter() - t0})
    if out:
        (out / "metrics.json").write_text(json.dumps(pub, indent=2, sort_keys=True) + "\n")
    return pub
