"""The search: sensitivity and prices per layer and width, the ILP allocation, a Pareto sweep,
QAT fine-tuning and verification of the chosen configuration; every job a Ray task, every
result cached by content.  ``search(...)`` returns (and writes) the ``search.json`` report."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qat.search import jobs as J
from qat.search.cache import VERIFY_SOURCES, JobCache, code_fingerprint, content_key
from qat.search.errors import SearchError
from qat.search.frameworks import ModelRef, module, ref_of
from qat.search.ilp import allocate
from qat.search.metric import MetricRef, metric_ref
from qat.search.runner import Job, Runner

SEARCH_VERSION = 1  # part of every job key: bump when a job's meaning changes
DATA_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class SearchOptions:
    widths: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8])  # candidate weight widths (bits)
    budget_luts: float | None = None
    max_loss: float | None = None  # budget on the summed sensitivity (units of the objective)
    objective: str = "measured"  # 'measured' (loss increase) or 'hessian' (Tr(H)/n * ||Q(W)-W||^2)
    board: str = "pynq-z2"
    price: str = "yosys"  # 'yosys' or 'fast'
    sens_samples: int = 1024  # training samples for the measured sensitivity and the Hessian
    hessian_probes: int = 8
    epochs: int = 2  # QAT fine-tuning epochs of the chosen configuration
    lr: float = 3e-3
    seed: int = 0
    pareto_points: int = 6  # LUT budgets swept for the Pareto table
    verify: bool = True
    verify_synth: bool = True
    random_vectors: int = 200
    workers: int | None = None
    ray_address: str | None = None
    cache: str | None = None  # default: OUT/cache
    metric: str | None = None  # file.py:NAME, the model's own metric (qat.search.metric); default accuracy / -MSE
    progress: bool = True


def load_data(path: str | Path, sens_samples: int, extras: bool = False) -> dict[str, np.ndarray]:
    """DATA.npz with x_train, y_train, x_test, y_test (+ the sensitivity subset; ``extras``: and its
    other arrays, for a model's own metric)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as exc:
        raise SearchError(f"{path}: cannot read a .npz file ({exc})") from None
    missing = [k for k in DATA_KEYS if k not in data]
    if missing:
        raise SearchError(f"{path}: missing array(s) {', '.join(missing)} (needs {', '.join(DATA_KEYS)})")
    for a, b in (("x_train", "y_train"), ("x_test", "y_test")):
        if len(data[a]) != len(data[b]) or not len(data[a]):
            raise SearchError(f"{path}: {a} and {b} must have the same, non-zero number of rows")
    out = {k: data[k].astype(np.float32) if k.startswith("x") else data[k] for k in DATA_KEYS}
    if extras:
        out.update({k: v for k, v in data.items() if k not in out and k not in ("x_sens", "y_sens")})
    out["x_sens"], out["y_sens"] = out["x_train"][:sens_samples], out["y_train"][:sens_samples]
    return out


def _data_key(data: dict[str, np.ndarray]) -> str:
    return content_key(*[k for k in sorted(data)], *[np.ascontiguousarray(data[k]).tobytes() for k in sorted(data)])


def finetune_job(ref: ModelRef, data: dict[str, np.ndarray], dk: str, widths: dict[str, int], opts: SearchOptions,
                 met: MetricRef | None, label: str) -> Job:
    """The QAT fine-tuning job of ``widths`` (its key shared by the search and the bench studies: the same
    configuration is fine-tuned once)."""
    return Job("finetune", content_key(SEARCH_VERSION, "finetune", ref.key, dk, widths, opts.epochs, opts.lr,
                                       opts.seed, *([met.key] if met else [])), J.finetune,
               (ref, data, widths, opts.epochs, opts.lr, opts.seed, met), label, {"model_bytes": "model"})


def verify_job(ref: ModelRef, data: dict[str, np.ndarray], dk: str, opts: SearchOptions, cache_root: str,
               label: str) -> Job:
    """The verification job of a (fine-tuned) model, keyed by the verifier's source too (shared like
    :func:`finetune_job`)."""
    return Job("verify", content_key(SEARCH_VERSION, "verify", code_fingerprint(VERIFY_SOURCES), ref.key, dk,
                                     opts.board, opts.random_vectors, opts.verify_synth, opts.seed), J.verify,
               (ref, data, opts.board, opts.random_vectors, opts.verify_synth, opts.seed, cache_root), label)


def _widths_name(widths: dict[str, int], layers: list[str]) -> str:
    return "-".join(str(widths[n]) for n in layers)


def search(model: str, data_path: str, out_dir: str | Path, opts: SearchOptions,
           input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Run the whole search; writes OUT/search.json, OUT/pareto.md, OUT/pareto.png and the best model."""
    if (opts.budget_luts is None) == (opts.max_loss is None):
        raise SearchError("give exactly one of --budget-luts and --max-loss")
    if opts.objective not in ("measured", "hessian"):
        raise SearchError(f"--objective must be 'measured' or 'hessian', got {opts.objective!r}")
    if not opts.widths or min(opts.widths) < 2 or max(opts.widths) > 16:
        raise SearchError(f"--widths must be bit widths in 2..16, got {opts.widths}")
    from boards.catalog import board as get_board

    get_board(opts.board)  # unknown board: one line now, not in a job
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = JobCache(opts.cache or out / "cache")
    ref = ref_of(model, input_shape)
    met = metric_ref(opts.metric) if opts.metric else None
    fw = module(ref.framework)
    data = load_data(data_path, opts.sens_samples, extras=met is not None)
    fw.deterministic()
    m = fw.from_ref(ref)
    layers = fw.layers(m)
    own = fw.widths_of(m)
    widths = sorted(set(int(w) for w in opts.widths))
    dk, mk = _data_key(data), ref.key
    croot = str(Path(cache.root).resolve())
    gen = code_fingerprint()  # prices depend on the generator as it is now (verification: VERIFY_SOURCES)

    def key(kind: str, *parts: Any) -> str:
        return content_key(SEARCH_VERSION, kind, mk, *parts)

    mk_ = [met.key] if met else []  # in the keys of the jobs that report the metric

    with Runner(cache, opts.ray_address, opts.workers, opts.progress) as runner:
        # 1. sensitivity (measured and Hessian) and prices, all as one batch of tasks
        jl: list[Job] = [Job("base", key("base", dk, *mk_), J.base, (ref, data, met), "base")]
        jl += [Job("hessian", key("hessian", dk, n, opts.hessian_probes, opts.seed), J.hessian,
                   (ref, data, n, opts.hessian_probes, opts.seed), f"hessian {n}") for n in layers]
        jl += [Job("measured", key("measured", dk, n, w), J.measured, (ref, data, n, w), f"loss {n}@{w}")
               for n in layers for w in widths]
        jl += [Job("price", key("price", gen, n, w, layers, opts.board, opts.price), J.price,
                   (ref, n, w, layers, opts.board, opts.price, croot), f"price {n}@{w}") for n in layers for w in widths]
        jl += [Job("price", key("fixed", gen, layers, opts.board, opts.price), J.fixed_price,
                   (ref, layers, opts.board, opts.price, croot), "price fixed ops")]
        r = runner.run(jl, "sensitivity + prices")
        base = r[jl[0].key]
        trace = {n: r[j.key]["trace"] for n, j in zip(layers, jl[1:1 + len(layers)])}
        meas = {(j.args[2], j.args[3]): r[j.key] for j in jl if j.kind == "measured"}
        prices = {(j.args[1], j.args[2]): r[j.key] for j in jl if j.kind == "price" and j.fn is J.price}
        fixed = r[jl[-1].key]
        L, W = len(layers), len(widths)
        s_meas, s_hess, luts = np.zeros((L, W)), np.zeros((L, W)), np.zeros((L, W))
        allowed = np.ones((L, W), dtype=bool)
        table = []
        for i, n in enumerate(layers):
            for k, w in enumerate(widths):
                mres, pres = meas[(n, w)], prices[(n, w)]
                s_meas[i, k] = mres["loss"] - base["sens"]["loss"]
                s_hess[i, k] = trace[n] / mres["n_weights"] * mres["weight_error"]
                if "error" in pres:
                    allowed[i, k] = False
                else:
                    luts[i, k] = pres["luts"]
                table.append({"layer": n, "width": w, "loss_increase": s_meas[i, k], "hessian_trace": trace[n],
                              "hessian_sensitivity": s_hess[i, k], "weight_error": mres["weight_error"],
                              "luts": None if "error" in pres else pres["luts"], "price_model": pres.get("model"),
                              "price_error": pres.get("error"), "verilog_key": pres.get("verilog_key")})
        obj = s_meas if opts.objective == "measured" else s_hess
        alloc = allocate(obj, luts, fixed["luts"], budget_luts=opts.budget_luts, max_loss=opts.max_loss,
                         allowed=allowed)
        chosen = {n: widths[k] for n, k in zip(layers, alloc.choice)}

        # 2. Pareto sweep: the ILP at several LUT budgets, and the uniform widths; each evaluated
        configs: dict[str, dict] = {}

        def add(kind: str, name: str, ws: dict[str, int]) -> None:
            nm = _widths_name(ws, layers)
            idx = [widths.index(ws[n]) for n in layers]
            if nm in configs or not all(allowed[i, k] for i, k in enumerate(idx)):
                return
            configs[nm] = {"name": name, "kind": kind, "widths": ws,
                           "luts": float(fixed["luts"] + sum(luts[i, k] for i, k in enumerate(idx))),
                           "sensitivity": float(sum(obj[i, k] for i, k in enumerate(idx)))}

        add("searched", "chosen", chosen)
        for w in widths:
            add("uniform", f"uniform {w}-bit", {n: w for n in layers})
        lo = fixed["luts"] + np.where(allowed, luts, np.inf).min(axis=1).sum()
        hi = fixed["luts"] + np.where(allowed, luts, -np.inf).max(axis=1).sum()
        for b in np.linspace(lo, hi, max(2, opts.pareto_points)):
            a = allocate(obj, luts, fixed["luts"], budget_luts=float(b), allowed=allowed)
            add("searched", f"budget {b:.0f}", {n: widths[k] for n, k in zip(layers, a.choice)})
        ev = [Job("evaluate", key("evaluate", dk, c["widths"], *mk_), J.evaluate, (ref, data, c["widths"], met),
                  f"evaluate {nm}") for nm, c in configs.items()]
        ft = finetune_job(ref, data, dk, chosen, opts, met, "fine-tune chosen")
        r = runner.run(ev + [ft], "evaluate + fine-tune")
        for j, (nm, c) in zip(ev, configs.items()):
            c["metric"], c["loss"] = r[j.key]["metric"], r[j.key]["loss"]
        best = r[ft.key]
        cname = _widths_name(chosen, layers)
        configs[cname].update(chosen=True, metric_finetuned=best["after"]["metric"],
                              loss_finetuned=best["after"]["loss"])

        # 3. verification of the fine-tuned model
        verification = None
        best_ref = ModelRef(ref.framework, best["model_bytes"], ref.source, ref.name, ref.input_shape)
        if opts.verify:
            vj = verify_job(best_ref, data, dk, opts, croot, "verify chosen")
            verification = runner.run([vj], "verify")[vj.key]
            executed = runner.executed
        else:
            executed = runner.executed

    best_files = fw.write_best(best_ref, out)
    points = list(configs.values())
    metric_name = met.name if met else "accuracy" if fw.task_of(data["y_test"]) == "classification" else "-MSE"
    from qat.search import pareto

    (out / "pareto.md").write_text(pareto.table(points, layers, metric_name))
    pareto.plot(points, metric_name, out / "pareto.png",
                f"{Path(model.rpartition(':')[0] if '.py:' in model else model).name}: {metric_name} vs LUTs "
                f"({opts.price} prices)")
    predicted = alloc.luts
    report: dict[str, Any] = {
        "model": model, "framework": ref.framework, "metric_name": metric_name, "layers": layers,
        "model_widths": own, "widths": widths,
        "options": {k: v for k, v in asdict(opts).items() if k not in ("progress",)},
        "base": base, "fixed_luts": fixed["luts"], "table": table,
        "chosen": {"widths": chosen, "predicted_luts": predicted, "sensitivity": alloc.sensitivity,
                   "metric_before_finetune": best["before"]["metric"], "metric": best["after"]["metric"],
                   "loss": best["after"]["loss"], "files": best_files},
        "configurations": sorted(points, key=lambda p: (p["luts"], p["name"])),
        "verification": verification, "jobs_run": executed,
    }
    if verification and "synthesis" in verification:
        syn = verification["synthesis"]["total"]["LUT"]
        report["chosen"]["synthesized_luts"] = syn
        report["chosen"]["predicted_over_synthesized"] = predicted / syn if syn else None
    (out / "search.json").write_text(json.dumps(_stable(report), indent=1, sort_keys=True) + "\n")
    return report


def _stable(obj: Any) -> Any:
    """JSON-ready: numpy scalars to Python, floats kept exactly."""
    if isinstance(obj, dict):
        return {str(k): _stable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_stable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
