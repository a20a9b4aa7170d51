"""The properties the fuzzer checks on every network, and the shrinker.

* golden model: every tensor stays within its proven interval bounds;
* file format: save -> load -> save is byte-identical and the loaded network computes the
  same integers;
* HLS C++ C-simulation (g++) == golden, bit for bit;
* RTL (compiled Verilator harness, rtl_sim.fast_sim) == golden, bit for bit, and
  ``verilator --lint-only -Wall`` is clean;
* (on a sample) the cocotb testbench (rtl_sim.cosim) agrees too.

A batch (tests/fuzz/netgen.Batch) is checked with one g++ compile and one Verilator build;
mismatches are attributed to sub-networks by their output columns.  :func:`shrink` reduces a
failing sub-network to the first op whose result is wrong (one build of a "tap" network that
outputs every tensor), then to that op alone fed with the exact intermediate values, and
:func:`save_regression` stores it under tests/fuzz/regressions/ (replayed by tests/test_fuzz.py).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from qat.ir import golden, intervals, netfile
from qat.ir.network import Input, Network
from qat.ir.types import IntType

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
NOT_REPRODUCED = "did not reproduce alone"  # :func:`shrink`'s message when the network alone passes
ENGINES = ("csim", "rtl")


def csim_cache() -> Path:
    from rtl_sim.objcache import cache_dir

    return cache_dir() / "fuzz_csim"


def _digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(k.encode() + b"\0" + files[k].encode() + b"\0")
    return h.hexdigest()[:20]


def run_csim_rows(net: Network, x: np.ndarray) -> np.ndarray:
    """The C-simulation's outputs (N, n_out) as Python ints (one cached g++ build per distinct project)."""
    from hls.cpp.hls_cpp import generate
    from rtl_sim.csim import run_csim

    proj = generate(net)
    d = csim_cache() / _digest(proj.files)
    with _locked(d):  # campaigns in parallel share the build cache; the vectors and outputs are per run
        proj.write(d)
        run_csim(net, d, [x])
        rows = [[int(t) for t in ln.split()] for ln in (d / "tb_output.txt").read_text().splitlines()]
    try:  # keep the newest 200 builds; an entry another process holds (locked) is left alone
        entries = sorted((p for p in csim_cache().iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for p in entries[:-200]:
            with _locked(p, wait=False) as got:
                if got:
                    shutil.rmtree(p, ignore_errors=True)
    except OSError:
        pass
    return np.array(rows, dtype=object).reshape(len(x), -1)


@contextlib.contextmanager
def _locked(d: Path, wait: bool = True):
    """An exclusive lock on the build directory ``d`` (a sibling ``d.lock`` file); yields whether it was
    taken (always, when ``wait``)."""
    d.parent.mkdir(parents=True, exist_ok=True)
    with open(d.parent / f"{d.name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lint(design) -> str:
    """verilator --lint-only -Wall (as tests/test_rtl.py): '' when clean."""
    from rtl_sim.cosim import tool_env

    with tempfile.TemporaryDirectory(prefix="qrtl-fuzz-lint-") as td:
        design.write(td)
        files = [str(Path(td) / f) for f in design.verilog_files]
        res = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", design.top] + files,
                             capture_output=True, text=True, env=tool_env(), cwd=td)
    out = res.stdout + res.stderr
    return out if res.returncode else "".join(ln + "\n" for ln in out.splitlines() if ln.startswith("%"))


def run_rtl_rows(net: Network, x: np.ndarray, do_lint: bool = True) -> tuple[np.ndarray, str, float]:
    """The RTL's outputs (N, n_out) through the compiled harness, the lint text, the build seconds."""
    from hls.rtl.verilog import generate
    from rtl_sim.fast_sim import build, predict_raw

    design = generate(net)
    lint_text = lint(design) if do_lint else ""
    fb = build(design, quick_build=True)  # 200 vectors: compile time is what counts
    got = predict_raw(design, x, net=net, quick_build=True)
    return got.reshape(len(x), -1).astype(object), lint_text, 0.0 if fb.cached else fb.build_seconds


def run_cocotb(net: Network, x: np.ndarray, work: Path) -> str | None:
    from rtl_sim.cosim import run_cosim

    res = run_cosim(net, x, work, trace_layers=True)
    return None if res.ok else res.describe()


def golden_rows(net: Network, x: np.ndarray) -> np.ndarray:
    out = np.asarray(golden.run(net, x)[net.outputs[0]])
    return out.reshape(len(x), -1).astype(object)


def check_bounds(net: Network, x: np.ndarray) -> str | None:
    env = golden.run(net, x, keep_all=True)
    bd = intervals.analyze(net)
    for op in net.ops:
        v = np.asarray(env[op.name]).astype(object)
        if not ((v >= bd[op.name].lo[None]).all() and (v <= bd[op.name].hi[None]).all()):
            return f"golden value of '{op.name}' ({op.kind}) outside its proven bounds"
    return None


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def check_netfile(net: Network, x: np.ndarray) -> str | None:
    """save -> load -> save byte-identical; the loaded network computes the same integers."""
    with tempfile.TemporaryDirectory(prefix="qrtl-fuzz-net-") as td:
        a, b = Path(td) / "a", Path(td) / "b"
        netfile.save(net, a)
        back = netfile.load(a)
        netfile.save(back, b)
        if _tree(a) != _tree(b):
            return "netfile: save(load(save(net))) differs from save(net)"
        if [(o.name, o.kind, o.inputs, tuple(o.shape), o.type) for o in back.ops] != \
                [(o.name, o.kind, o.inputs, tuple(o.shape), o.type) for o in net.ops]:
            return "netfile: ops differ after a round trip"
        for o, p in zip(net.ops, back.ops):
            if sorted(o.arrays) != sorted(p.arrays) or any(
                    not np.array_equal(np.asarray(o.arrays[k]).astype(object), np.asarray(p.arrays[k]).astype(object))
                    for k in o.arrays):
                return f"netfile: arrays of '{o.name}' differ after a round trip"
        ga, gb = golden_rows(net, x), golden_rows(back, x)
        if ga.shape != gb.shape or not (ga == gb).all():
            return "netfile: the loaded network computes other integers"
    return None


def first_mismatch(want: np.ndarray, got: np.ndarray) -> dict | None:
    if got.shape != want.shape:
        return {"shape": [list(want.shape), list(got.shape)]}
    bad = np.argwhere(want != got)
    if len(bad) == 0:
        return None
    v, k = (int(i) for i in bad[0])
    return {"vector": v, "element": k, "expected": int(want[v, k]), "got": int(got[v, k]),
            "vectors_wrong": int(len(np.unique(bad[:, 0])))}


def run_engines(net: Network, x: np.ndarray, engines=ENGINES, do_lint: bool = True, parallel: bool = True) -> dict:
    """{'csim': rows | Exception, 'rtl': rows | Exception, 'lint': text, 'seconds': ...}."""
    out: dict = {}
    t0 = time.perf_counter()

    def csim():
        return run_csim_rows(net, x)

    def rtl():
        return run_rtl_rows(net, x, do_lint)

    jobs = {"csim": csim, "rtl": rtl}
    with cf.ThreadPoolExecutor(max_workers=2 if parallel else 1) as ex:
        futs = {k: ex.submit(jobs[k]) for k in engines}
        for k, f in futs.items():
            try:
                r = f.result()
                if k == "rtl":
                    out["rtl"], out["lint"], out["rtl_build_s"] = r
                else:
                    out[k] = r
            except Exception as exc:  # a generator or tool rejecting a valid network is a finding
                out[k] = exc
    out["seconds"] = time.perf_counter() - t0
    return out


def check_network(net: Network, x: np.ndarray, engines=ENGINES, do_lint: bool = True) -> list[dict]:
    """Every property on one network; a list of findings (empty: all agree)."""
    found = []
    for what, fn in (("bounds", check_bounds), ("netfile", check_netfile)):
        msg = fn(net, x)
        if msg:
            found.append({"engine": what, "message": msg})
    want = golden_rows(net, x)
    res = run_engines(net, x, engines, do_lint)
    for k in engines:
        if isinstance(res[k], Exception):
            found.append({"engine": k, "message": f"{type(res[k]).__name__}: {res[k]}"})
            continue
        m = first_mismatch(want, res[k])
        if m:
            found.append({"engine": k, "message": "mismatch vs golden", **m})
    if do_lint and "rtl" in engines and res.get("lint"):
        found.append({"engine": "lint", "message": res["lint"][:2000]})
    return found


# ---- shrinking ------------------------------------------------------------------------------

def ancestors(net: Network, name: str) -> Network:
    """The ops ``name`` depends on (in order), output ``name``."""
    need, ops = {name}, []
    for op in reversed(net.ops):
        if op.name in need:
            ops.append(op)
            need.update(op.inputs)
    return Network(f"{net.name}_{name}", list(net.inputs), ops[::-1], [name])


def fails(net: Network, x: np.ndarray, engine: str) -> dict | None:
    """The first finding of ``engine`` on ``net`` (None: it passes)."""
    if engine in ("bounds", "netfile"):
        msg = (check_bounds if engine == "bounds" else check_netfile)(net, x)
        return {"engine": engine, "message": msg} if msg else None
    eng = ("rtl",) if engine == "lint" else (engine,)
    try:
        found = check_network(net, x, eng, do_lint=engine == "lint")
    except Exception as exc:  # noqa: BLE001
        return {"engine": engine, "message": f"{type(exc).__name__}: {exc}"}
    return next((f for f in found if f["engine"] == engine), None)


def shrink(net: Network, x: np.ndarray, engine: str, log=print) -> tuple[Network, np.ndarray, dict]:
    """A smaller network (and vectors) on which ``engine`` still disagrees with the golden model."""
    from fuzz.netgen import wrap

    best, bx = net, x
    finding = fails(net, x, engine)
    if finding is None:
        return net, x, {"engine": engine, "message": NOT_REPRODUCED}
    if engine in ("csim", "rtl") and len(net.ops) > 1:
        # one build of a network that outputs every tensor: the first op whose result is wrong
        taps = [(ancestors(net, op.name), set()) for op in net.ops]
        try:
            tb = wrap(taps, net.inputs[0], name=f"{net.name}_taps")
            want = golden_rows(tb.net, x)
            got = run_engines(tb.net, x, (engine,), do_lint=False)[engine]
            if not isinstance(got, Exception):
                for part in tb.parts:
                    cols = [c for a, b, _ in part.cols for c in range(a, b)]
                    if first_mismatch(want[:, cols], got[:, cols]):
                        cand = part.net
                        f = fails(cand, x, engine)
                        if f:
                            best, finding = cand, f
                            log(f"  shrink: first wrong tensor '{cand.outputs[0]}' ({len(cand.ops)} ops)")
                        break
        except Exception as exc:  # noqa: BLE001
            log(f"  shrink: tap network failed ({type(exc).__name__}: {exc})")
    # the failing vectors first (and a few others)
    if "vector" in finding:
        rows = sorted({int(finding["vector"])} | set(range(min(8, len(bx)))))
        f = fails(best, bx[rows], engine)
        if f:
            bx, finding = bx[rows], f
    # the last op alone, fed with the exact values its input had
    last = best.ops[-1]
    if len(best.ops) > 1 and len(last.inputs) == 1 and last.inputs[0] != best.inputs[0].name:
        src = last.inputs[0]
        vals = np.asarray(golden.run(best, bx, keep_all=True)[src])
        t = best.tensor_types()[src]
        shape = best.tensor_shapes()[src]
        one = Network(f"{best.name}_alone", [Input("x", shape, t)],
                      [type(last)(last.name, last.kind, ["x"], tuple(last.shape), last.type, dict(last.attrs),
                                  dict(last.arrays), last.source)], [last.name])
        try:
            intervals.validate(one)
            f = fails(one, vals, engine)
        except Exception:  # noqa: BLE001
            f = None
        if f:
            best, bx, finding = one, vals, f
            log(f"  shrink: '{last.name}' ({last.kind}) alone fails")
    return best, bx, finding


def network_digest(net: Network) -> str:
    """SHA-256 of a network's content (input, ops, types, attributes, arrays): equal networks, equal digests."""
    h = hashlib.sha256(repr([(i.name, tuple(i.shape), i.type) for i in net.inputs]).encode())
    for o in net.ops:
        h.update(repr((o.name, o.kind, o.inputs, tuple(o.shape), o.type, sorted(o.attrs.items()))).encode())
        for k in sorted(o.arrays):
            a = np.asarray(o.arrays[k])
            h.update(k.encode() + repr(a.shape).encode() + repr(a.tolist()).encode())
    return h.hexdigest()


def save_regression(net: Network, x: np.ndarray, finding: dict, root: Path = REGRESSIONS) -> Path:
    """tests/fuzz/regressions/<name>/: the network directory (qat.ir.netfile) plus vectors.npy."""
    net.meta = dict(net.meta, fuzz_finding={k: (str(v) if not isinstance(v, (int, str)) else v)
                                            for k, v in finding.items()})
    d = root / f"{finding['engine']}_{net.ops[-1].kind}_{network_digest(net)[:10]}"
    netfile.save(net, d)
    np.save(d / "vectors.npy", np.asarray(x).astype(np.int64) if np.asarray(x).dtype != object or
            all(abs(int(v)) < 1 << 62 for v in np.asarray(x).ravel()) else np.asarray(x), allow_pickle=True)
    return d


def load_regression(d: Path) -> tuple[Network, np.ndarray]:
    net = netfile.load(d)
    x = np.load(d / "vectors.npy", allow_pickle=True)
    return net, x


def int_type_ok(t) -> bool:
    return isinstance(t, IntType)
