"""Whole-chain fuzz campaign (issue #17): random networks -> golden == C-sim == RTL.

    python tests/fuzz/campaign.py --networks 2000 --batch 40 --seed 1 --json bench/results/fuzz.json

Each hypothesis example is a batch of ``--batch`` random sub-networks over one shared input
(tests/fuzz/netgen.py), checked with one g++ compile and one Verilator build
(tests/fuzz/check.py).  A failing sub-network is shrunk and saved under
tests/fuzz/regressions/.  Prints and writes cases, minutes, cases/minute and op coverage.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import re
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz import check  # noqa: E402
from fuzz.netgen import Batch, batches, uncovered_kinds, vectors, wrap  # noqa: E402
from qat.ir.spec import op_kinds  # noqa: E402


DRAW_FACTOR = 4  # hypothesis examples drawn per distinct batch wanted, at most


def check_batch(b: Batch, n_vectors: int, vec_seed: int, do_lint: bool = True) -> tuple[list[dict], dict]:
    """All properties on a batch; findings carry the index of the sub-network they belong to."""
    x = vectors(b.net, n_vectors, vec_seed)
    found = []
    msg = check.check_bounds(b.net, x)
    if msg:
        found.append({"part": None, "engine": "bounds", "message": msg})
    for k, p in enumerate(b.parts):
        msg = check.check_netfile(p.net, x[:16])
        if msg:
            found.append({"part": k, "engine": "netfile", "message": msg})
    want = check.golden_rows(b.net, x)
    res = check.run_engines(b.net, x, check.ENGINES, do_lint)
    for eng in check.ENGINES:
        got = res[eng]
        if isinstance(got, Exception):  # attribute a rejection to the sub-networks that cause it
            named = _parts_named(str(got))  # a tool error naming a module or an op
            bad = [k for k, p in enumerate(b.parts) if k in named or _rejects(p.net, eng)]
            for k in bad or [None]:
                found.append({"part": k, "engine": eng, "message": f"{type(got).__name__}: {got}"[:1500]})
            continue
        for k, p in enumerate(b.parts):
            cols = [c for a, z, _ in p.cols for c in range(a, z)]
            m = check.first_mismatch(want[:, cols], got[:, cols])
            if m:
                found.append({"part": k, "engine": eng, "message": "mismatch vs golden", **m})
    if do_lint and res.get("lint"):
        for k in sorted(_parts_named(res["lint"])) or [None]:
            found.append({"part": k, "engine": "lint", "message": res["lint"][:2000]})
    return found, {"x": x, "seconds": res["seconds"], "rtl_build_s": res.get("rtl_build_s")}


def _parts_named(text: str) -> set[int]:
    return {int(a or b) for a, b in re.findall(r"_n(\d+)_|'n(\d+)_", text)}


def _rejects(net, engine: str) -> bool:
    try:
        if engine == "csim":
            from hls.cpp.hls_cpp import generate
        else:
            from hls.rtl.verilog import generate
        generate(net)
        return False
    except Exception:  # noqa: BLE001
        return True


def run(networks: int, batch: int, seed_: int, n_vectors: int = 200, out_json: Path | None = None,
        minutes: float | None = None, do_shrink: bool = True, save: bool = True, cocotb_every: int = 0,
        log=print) -> dict:
    n_batches = math.ceil(networks / batch)
    t0 = time.time()
    stats = {"seed": seed_, "batch": batch, "vectors_per_network": n_vectors, "batches": 0, "networks": 0,
             "ops": 0, "op_kinds": collections.Counter(), "features": collections.Counter(), "findings": [],
             "regressions": [], "cocotb_batches": 0, "stopped": None, "build_seconds": 0.0, "duplicates_skipped": 0}

    def write():
        if out_json is None:
            return
        mins = (time.time() - t0) / 60
        doc = {
            "command": " ".join(sys.argv),
            "seed": seed_, "batch_size": batch, "vectors_per_network": n_vectors,
            "networks": stats["networks"], "batches": stats["batches"], "ops": stats["ops"],
            "minutes": round(mins, 2), "networks_per_minute": round(stats["networks"] / mins, 2) if mins else None,
            "mismatches": sum(1 for f in stats["findings"] if f["engine"] in ("csim", "rtl")),
            "findings": stats["findings"], "regressions": stats["regressions"],
            "op_kinds_registered": list(op_kinds()), "op_kinds_uncovered_by_generator": uncovered_kinds(),
            "op_kinds_covered": dict(sorted(stats["op_kinds"].items())),
            "op_kinds_never_generated": [k for k in op_kinds() if not stats["op_kinds"].get(k)],
            "features": dict(sorted(stats["features"].items())),
            "cocotb_batches": stats["cocotb_batches"], "stopped": stats["stopped"],
            "duplicate_batches_skipped": stats["duplicates_skipped"],
        }
        write_report(out_json, doc)

    class Stop(Exception):
        pass

    seen: set[str] = set()

    # hypothesis replays and mutates earlier examples: a batch identical to one already checked is
    # skipped and not counted (figures count distinct networks); up to DRAW_FACTOR x the batches are drawn
    @seed(seed_)
    @settings(max_examples=DRAW_FACTOR * n_batches, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(batches(batch))
    def one(b: Batch):
        if minutes is not None and time.time() - t0 > minutes * 60:
            stats["stopped"] = f"time limit of {minutes} minutes"
            raise Stop()
        if stats["batches"] >= n_batches:
            raise Stop()
        h = check.network_digest(b.net)
        if h in seen:
            stats["duplicates_skipped"] += 1
            return
        seen.add(h)
        k = stats["batches"]
        tb = time.time()
        found, info = check_batch(b, n_vectors, seed_ * 100003 + k)
        if cocotb_every and k % cocotb_every == 0:
            try:
                msg = check.run_cocotb(b.net, info["x"][:20], Path(f"/tmp/qrtl-fuzz-cocotb-{seed_}-{k}"))
            except Exception as exc:  # noqa: BLE001
                msg = f"{type(exc).__name__}: {exc}"
            stats["cocotb_batches"] += 1
            if msg:
                found.append({"part": None, "engine": "cocotb", "message": msg[:1500]})
        stats["batches"] += 1
        stats["networks"] += len(b.parts)
        for p in b.parts:
            stats["ops"] += len(p.net.ops)
            stats["op_kinds"].update(op.kind for op in p.net.ops)
            stats["features"].update(p.feat)
        t = b.net.inputs[0].type
        stats["features"][f"input_{type(t).__name__}"] += 1
        for f in found:
            f = dict(f, batch=k)
            log(f"  FINDING batch {k} part {f['part']}: {f['engine']}: {f['message'][:300]}")
            if do_shrink and f["part"] is not None and f["engine"] in ("csim", "rtl", "netfile", "lint"):
                p = b.parts[f["part"]]
                try:
                    net = p.net
                    if f["engine"] == "lint":  # linted in the batch, where the part's output feeds a wrapper requant
                        net = wrap([(p.net, set())], p.net.inputs[0], name=p.net.name).net
                    small, sx, sf = check.shrink(net, info["x"], f["engine"], log=log)
                    f["shrunk_ops"] = len(small.ops)
                    if sf.get("message") == check.NOT_REPRODUCED:
                        f["reproduced"] = False  # kept in the report, no regression saved
                        log("  not reproduced alone: no regression saved")
                    elif save:
                        d = check.save_regression(small, sx, sf)
                        stats["regressions"].append(str(d))
                        log(f"  saved regression {d}")
                except Exception as exc:  # noqa: BLE001
                    log(f"  shrink failed: {type(exc).__name__}: {exc}")
            stats["findings"].append({k2: (v if isinstance(v, (int, str, float, type(None))) else str(v))
                                      for k2, v in f.items()})
        mins = (time.time() - t0) / 60
        log(f"batch {k}: {len(b.parts)} networks, {len(b.net.ops)} ops, input {t.describe()}{tuple(b.net.inputs[0].shape)}"
            f", {time.time() - tb:.0f} s, findings {len(found)}; total {stats['networks']} networks in {mins:.1f} min "
            f"({stats['networks'] / mins:.1f}/min)")
        write()

    try:
        one()
    except Stop:
        pass
    stats["minutes"] = (time.time() - t0) / 60
    write()
    return stats


SUMMED = ("networks", "batches", "ops", "mismatches", "cocotb_batches", "duplicate_batches_skipped")


def write_report(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def combine(docs: list[dict], command: str) -> dict:
    """One report from campaigns run side by side (one seed each): counts summed, minutes the longest
    (they ran at the same time), findings and regressions concatenated with their seed."""
    out = {k: sum(d.get(k, 0) for d in docs) for k in SUMMED}
    mins = max(d["minutes"] for d in docs)
    cnt = collections.Counter()
    feats = collections.Counter()
    for d in docs:
        cnt.update(d["op_kinds_covered"])
        feats.update(d["features"])
    out.update({
        "command": command, "seeds": [d["seed"] for d in docs], "parallel_campaigns": len(docs),
        "batch_size": docs[0]["batch_size"], "vectors_per_network": docs[0]["vectors_per_network"],
        "minutes": mins, "networks_per_minute": round(out["networks"] / mins, 2) if mins else None,
        "findings": [dict(f, seed=d["seed"]) for d in docs for f in d["findings"]],
        "regressions": [r for d in docs for r in d["regressions"]],
        "op_kinds_registered": docs[0]["op_kinds_registered"],
        "op_kinds_uncovered_by_generator": docs[0]["op_kinds_uncovered_by_generator"],
        "op_kinds_covered": dict(sorted(cnt.items())),
        "op_kinds_never_generated": [k for k in docs[0]["op_kinds_registered"] if not cnt.get(k)],
        "features": dict(sorted(feats.items())),
        "stopped": [d["stopped"] for d in docs if d["stopped"]] or None,
    })
    return out


def run_parallel(a) -> int:
    """``--jobs J``: J campaigns (seeds SEED..SEED+J-1, N/J networks each) as subprocesses, one report."""
    import subprocess
    import tempfile

    per = math.ceil(a.networks / a.jobs)
    with tempfile.TemporaryDirectory(prefix="qrtl-fuzz-jobs-") as td:
        procs, outs = [], []
        for k in range(a.jobs):
            js = Path(td) / f"seed{a.seed + k}.json"
            cmd = [sys.executable, __file__, "--networks", str(per), "--batch", str(a.batch), "--seed", str(a.seed + k),
                   "--vectors", str(a.vectors), "--json", str(js), "--cocotb-every", str(a.cocotb_every)]
            cmd += (["--minutes", str(a.minutes)] if a.minutes is not None else []) + (["--no-shrink"] if a.no_shrink else [])
            log = open(Path(td) / f"seed{a.seed + k}.log", "w")
            procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
            outs.append(js)
        t0 = time.time()
        while any(p.poll() is None for p, _ in procs):  # progress: the per-seed reports as they are written
            time.sleep(30)
            done = [json.loads(o.read_text()) for o in outs if o.exists()]
            print(f"[{(time.time() - t0) / 60:.1f} min] {sum(d['networks'] for d in done)} networks, "
                  f"{sum(len(d['findings']) for d in done)} findings", flush=True)
        for _, log in procs:
            log.close()
        docs = [json.loads(o.read_text()) for o in outs]
        for k in range(a.jobs):
            print(f"--- seed {a.seed + k}: " + (Path(td) / f"seed{a.seed + k}.log").read_text().strip().splitlines()[-1])
    doc = combine(docs, " ".join(sys.argv))
    write_report(a.json, doc)
    print(f"fuzz: {doc['networks']} networks ({doc['ops']} ops) in {doc['minutes']:.1f} min on {a.jobs} processes "
          f"({doc['networks_per_minute']}/min); op kinds covered {len(doc['op_kinds_covered'])}/"
          f"{len(doc['op_kinds_registered'])}; findings {len(doc['findings'])} ({doc['mismatches']} golden/C-sim/RTL "
          f"mismatches)")
    return 1 if doc["findings"] or any(p.returncode not in (0, 1) for p, _ in procs) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=40, help="sub-networks per build")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--vectors", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=None, help="stop after this many minutes")
    ap.add_argument("--cocotb-every", type=int, default=0, help="also run cocotb on every Nth batch (20 vectors)")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--json", type=Path, default=Path("bench/results/fuzz.json"))
    ap.add_argument("--jobs", type=int, default=1, help="campaigns side by side (seeds SEED, SEED+1, ...), one report")
    ap.add_argument("--combine", nargs="+", type=Path, metavar="JSON",
                    help="only merge the reports of campaigns already run side by side into --json")
    a = ap.parse_args(argv)
    if a.combine:
        doc = combine([json.loads(p.read_text()) for p in a.combine], " ".join(sys.argv))
        write_report(a.json, doc)
        print(f"fuzz: {doc['networks']} networks in {doc['minutes']:.1f} min; findings {len(doc['findings'])}")
        return 0
    if a.jobs > 1:
        return run_parallel(a)
    st = run(a.networks, a.batch, a.seed, a.vectors, a.json, a.minutes, not a.no_shrink, True, a.cocotb_every)
    mism = sum(1 for f in st["findings"] if f["engine"] in ("csim", "rtl"))
    print(f"fuzz: {st['networks']} networks ({st['ops']} ops) in {st['minutes']:.1f} min "
          f"({st['networks'] / max(st['minutes'], 1e-9):.1f}/min); op kinds covered "
          f"{len(st['op_kinds'])}/{len(op_kinds())}; findings {len(st['findings'])} ({mism} golden/C-sim/RTL mismatches)")
    return 1 if st["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
