"""Worked mixed-precision study (issue: mixed-precision search priced in synthesized hardware):
a searched configuration at <= 0.70x the LUTs of uniform 6-bit against uniform 4-, 6- and 8-bit
weights, every configuration QAT fine-tuned the same way and synthesized whole with Yosys.

Used by bench/search_jet.py and bench/search_econ.py; results in bench/results/search_<name>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent
WIDTHS = [3, 4, 5, 6, 8]


def study_main(name: str, model: Path, make_data: Callable[[Path], dict[str, np.ndarray]], description: str,
               argv: list[str] | None = None, metric: str | None = None) -> dict:
    """Command line of a study script: parse --price/--workers/--epochs, write ``make_data(model)``
    (x_train, y_train, x_test, y_test, and any arrays ``metric`` needs) to bench/build/search_<name>/data.npz,
    then :func:`run_study` (``metric``: the model's own metric, file.py:NAME as ``qrtl search --metric``)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--price", choices=("fast", "yosys"), default="fast", help="layer prices (default fast)")
    ap.add_argument("--workers", type=int, help="parallel jobs (default: the search's own default)")
    ap.add_argument("--epochs", type=int, default=2, help="QAT fine-tuning epochs of every row (default 2)")
    a = ap.parse_args(argv)
    data = ROOT / "build" / f"search_{name}" / "data.npz"
    data.parent.mkdir(parents=True, exist_ok=True)
    np.savez(data, **make_data(model))
    return run_study(name, str(model), data, WIDTHS, a.price, a.epochs, a.workers, metric=metric)


def run_study(name: str, model: str, data: Path, widths: list[int], price: str, epochs: int, workers: int | None,
              ratio: float = 0.70, uniform: tuple[int, ...] = (4, 6, 8), board: str = "pynq-z2",
              metric: str | None = None) -> dict:
    """Search at ``ratio`` x the predicted LUTs of uniform 6-bit, then fine-tune and synthesize the
    uniform baselines with the same recipe; write bench/results/search_<name>.json/.md."""
    from qat.search.cache import JobCache
    from qat.search.frameworks import ModelRef, ref_of
    from qat.search.metric import metric_ref
    from qat.search.run import SearchOptions, _data_key, finetune_job, load_data, search, verify_job
    from qat.search.runner import Runner

    out = ROOT / "build" / f"search_{name}"
    cache = str(out / "cache")
    t0 = time.perf_counter()
    base = SearchOptions(widths=widths, budget_luts=1e12, price=price, epochs=epochs, workers=workers,
                         cache=cache, verify=False, board=board, metric=metric)
    probe = search(model, str(data), out / "probe", base)  # sensitivities and prices (cached)
    # by widths, not by name: a uniform configuration the ILP also chose is listed once, as 'chosen'
    u6 = next(c for c in probe["configurations"] if set(c["widths"].values()) == {6})["luts"]
    opts = SearchOptions(**{**base.__dict__, "budget_luts": float(np.floor(ratio * u6)), "verify": True})
    rep = search(model, str(data), out / "searched", opts)
    search_s = time.perf_counter() - t0

    # the uniform baselines: same fine-tuning, same verification (whole-network Yosys)
    ref = ref_of(model)
    met = metric_ref(metric) if metric else None
    d = load_data(data, opts.sens_samples, extras=met is not None)
    dk = _data_key(d)
    rows = [{"name": f"searched ({ratio:.2f}x uniform 6-bit budget)", "widths": rep["chosen"]["widths"],
             "predicted_luts": rep["chosen"]["predicted_luts"], "synthesized_luts": rep["chosen"].get("synthesized_luts"),
             "metric": rep["chosen"]["metric"], "verified": rep["verification"]["ok"]}]
    layers = rep["layers"]
    with Runner(JobCache(cache), None, workers) as runner:
        fts = {}
        for w in uniform:
            fts[w] = finetune_job(ref, d, dk, {n: w for n in layers}, opts, met, f"fine-tune uniform {w}")
        r = runner.run(list(fts.values()), "fine-tune uniform baselines")
        vs = {}
        for w, j in fts.items():
            bref = ModelRef(ref.framework, r[j.key]["model_bytes"])
            vs[w] = verify_job(bref, d, dk, opts, str(Path(cache).resolve()), f"verify uniform {w}")
        v = runner.run(list(vs.values()), "verify uniform baselines")
    preds = {tuple(sorted(c["widths"].items())): c["luts"] for c in rep["configurations"]}
    for w in uniform:
        res = v[vs[w].key]
        rows.append({"name": f"uniform {w}-bit", "widths": {n: w for n in layers},
                     "predicted_luts": preds.get(tuple(sorted((n, w) for n in layers))),
                     "synthesized_luts": res["synthesis"]["total"]["LUT"],
                     "metric": r[fts[w].key]["after"]["metric"], "verified": res["ok"]})
    for x in rows:
        x["predicted_over_synthesized"] = (x["predicted_luts"] / x["synthesized_luts"]
                                           if x["predicted_luts"] and x["synthesized_luts"] else None)
    u6row = next(x for x in rows if x["name"] == "uniform 6-bit")
    s = rows[0]
    shown = Path(model).resolve().relative_to(ROOT.parent).as_posix() if Path(model).resolve().is_relative_to(
        ROOT.parent) else model  # the repository path, not this machine's
    summary = {"study": name, "model": shown, "metric": rep["metric_name"], "price": price, "widths": widths,
               "epochs": epochs, "rows": rows,
               "searched_over_uniform6_synth_luts": s["synthesized_luts"] / u6row["synthesized_luts"],
               "metric_delta_vs_uniform6": s["metric"] - u6row["metric"],
               "metric_relative_delta_vs_uniform6": ((s["metric"] - u6row["metric"]) / abs(u6row["metric"])
                                                     if u6row["metric"] else None),
               "predicted_over_synthesized": s["predicted_luts"] / s["synthesized_luts"],
               "seconds": round(time.perf_counter() - t0, 1), "search_seconds": round(search_s, 1),
               "command": f"make bench-search  (python bench/search_{name}.py)"}
    res_dir = ROOT / "results"
    (res_dir / f"search_{name}.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    md = [f"# Mixed-precision search: {name}", "",
          f"Model `{shown}`, candidate weight widths {widths}, {price} layer prices, {epochs} epoch(s) of QAT "
          f"fine-tuning for every row; LUTs from Yosys synth_xilinx of the whole network.", "",
          f"| configuration | widths | predicted LUTs | synthesized LUTs | predicted / synthesized | "
          f"{rep['metric_name']} | verified |",
          "|---|---|---|---|---|---|---|"]
    for x in rows:
        md.append(f"| {x['name']} | {'-'.join(str(x['widths'][n]) for n in layers)} | "
                  f"{x['predicted_luts'] if x['predicted_luts'] is None else round(x['predicted_luts'])} | "
                  f"{x['synthesized_luts']} | "
                  f"{'-' if x['predicted_over_synthesized'] is None else format(x['predicted_over_synthesized'], '.3f')} | "
                  f"{x['metric']:.4g} | {x['verified']} |")
    md += ["", f"searched / uniform 6-bit synthesized LUTs: {summary['searched_over_uniform6_synth_luts']:.3f}; "
               f"metric difference {summary['metric_delta_vs_uniform6']:+.4g}"
               + (f" ({summary['metric_relative_delta_vs_uniform6']:+.2%})"
                  if summary["metric_relative_delta_vs_uniform6"] is not None else "")
               + "; predicted / synthesized "
               f"{summary['predicted_over_synthesized']:.3f}", "",
           f"Pareto plot of the search (ILP at several budgets, uniform widths; predicted LUTs): "
           f"![pareto](search_{name}_pareto.png)", ""]
    (res_dir / f"search_{name}.md").write_text("\n".join(md))
    shutil.copyfile(out / "searched" / "pareto.png", res_dir / f"search_{name}_pareto.png")  # the search's Pareto plot
    print("\n".join(md))
    return summary
