"""C-simulation of generated HLS C++ with plain g++ and hls4ml's ap_types, bit for bit against
the golden model: writes the vectors and golden outputs as the project's testbench files,
compiles (cached by the sources' content) and compares every output."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hls.cpp.hls_cpp import HLSError, ap_include_dir, cname
from qat.ir import golden
from qat.ir.network import Network
from qat.ir.types import BinaryType


def _fmt_rows(arrays: list[np.ndarray], binary: list[bool]) -> str:
    n = len(arrays[0]) if arrays else 0
    flat = [np.asarray(a).reshape(n, -1) for a in arrays]
    lines = []
    for r in range(n):
        parts = []
        for f in flat:
            parts += [str(int(v)) for v in f[r]]
        lines.append(" ".join(parts))
    return "\n".join(lines) + ("\n" if lines else "")


def golden_outputs(net: Network, inputs: list[np.ndarray]) -> list[np.ndarray]:
    res = golden.run(net, {inp.name: x for inp, x in zip(net.inputs, inputs)})
    return [np.asarray(res[o]) for o in net.outputs]


def write_vectors(project_dir: str | Path, net: Network, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """tb_data/tb_input.txt and tb_data/tb_expected.txt (golden outputs); returns the golden outputs."""
    d = Path(project_dir) / "tb_data"
    d.mkdir(parents=True, exist_ok=True)
    types = net.tensor_types()
    expected = golden_outputs(net, inputs)
    (d / "tb_input.txt").write_text(_fmt_rows(inputs, [isinstance(i.type, BinaryType) for i in net.inputs]))
    (d / "tb_expected.txt").write_text(_fmt_rows(expected, [isinstance(types[o], BinaryType) for o in net.outputs]))
    return expected


@dataclass
class CsimResult:
    vectors: int
    exact_vectors: int
    outputs: int
    exact_outputs: int
    first_mismatch: dict | None
    compile_seconds: float
    run_seconds: float
    compiler: str

    @property
    def ok(self) -> bool:
        return self.exact_vectors == self.vectors and self.exact_outputs == self.outputs

    def as_dict(self) -> dict:
        return dict(self.__dict__, ok=self.ok)

    def describe(self) -> str:
        s = (f"C-sim (g++): {self.exact_vectors}/{self.vectors} vectors bit-exact, "
             f"{self.exact_outputs}/{self.outputs} outputs exact vs the golden model "
             f"(compile {'cached' if self.compile_seconds == 0 else f'{self.compile_seconds:.1f} s'}, "
             f"run {self.run_seconds:.2f} s)")
        if self.first_mismatch:
            m = self.first_mismatch
            s += (f"; first mismatch: vector {m['vector']}, output element {m['element']}: expected "
                  f"{m['expected']}, got {m['got']}")
        return s


def compile_csim(project_dir: str | Path, top: str, opt: str = "-O1") -> tuple[Path, float]:
    """Compile tb.cpp + the top with plain g++ and hls4ml's ap_types headers."""
    d = Path(project_dir)
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise HLSError("no C++ compiler (g++) on PATH: install g++ to run the C-simulation")
    exe = d / "csim_tb"
    stamp = d / "csim_tb.sha256"
    digest = hashlib.sha256(f"{cxx} {opt} {ap_include_dir()}".encode())
    for f in [d / "tb.cpp"] + sorted((d / "firmware").iterdir()):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    if exe.is_file() and stamp.is_file() and stamp.read_text().strip() == digest.hexdigest():
        return exe, 0.0  # same sources: reuse the binary
    cmd = [cxx, "-std=c++14", opt, "-w", f"-I{ap_include_dir()}", "-iquote", str(d / 'firmware'), str(d / "tb.cpp"),
           str(d / "firmware" / f"{top}.cpp"), "-o", str(exe)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if res.returncode != 0:
        (d / "csim_compile.log").write_text(res.stdout + res.stderr)
        first = next((ln for ln in res.stderr.splitlines() if "error" in ln), res.stderr.strip()[:300])
        raise HLSError(f"{d}: g++ failed to compile the C-simulation ({first.strip()}); see {d / 'csim_compile.log'}")
    stamp.write_text(digest.hexdigest() + "\n")
    return exe, secs


def run_csim(net: Network, project_dir: str | Path, inputs: list[np.ndarray], top: str | None = None) -> CsimResult:
    """Write vectors, compile, run the testbench and compare every output with the golden model."""
    d = Path(project_dir)
    top = cname(top or net.name)
    expected = write_vectors(d, net, inputs)
    exe, csecs = compile_csim(d, top)
    out_txt = d / "tb_output.txt"
    t0 = time.perf_counter()
    res = subprocess.run([str(exe), str(d / "tb_data" / "tb_input.txt"), str(out_txt),
                          str(d / "tb_data" / "tb_expected.txt")],
                         capture_output=True, text=True)
    rsecs = time.perf_counter() - t0
    if res.returncode not in (0, 1):
        raise HLSError(f"{d}: C-simulation testbench failed (status {res.returncode}): "
                       f"{(res.stderr or res.stdout).strip()[:300]}")
    n = len(inputs[0])
    exp_rows = np.concatenate([np.asarray(e).reshape(n, -1).astype(object) for e in expected], axis=1) if n else \
        np.zeros((0, 0), dtype=object)
    got_lines = out_txt.read_text().splitlines()
    exact_v, exact_o, total_o = 0, 0, 0
    first = None
    for r in range(n):
        want = [int(v) for v in exp_rows[r]]
        got = [int(t) for t in got_lines[r].split()] if r < len(got_lines) else []
        total_o += len(want)
        same = [a == b for a, b in zip(want, got)] + [False] * (len(want) - len(got))
        exact_o += sum(same[:len(want)])
        if all(same[:len(want)]) and len(got) == len(want):
            exact_v += 1
        elif first is None:
            k = next((i for i, s in enumerate(same) if not s), 0)
            first = {"vector": r, "element": k, "expected": want[k] if k < len(want) else None,
                     "got": got[k] if k < len(got) else None}
    return CsimResult(n, exact_v, total_o, exact_o, first, round(csecs, 3), round(rsecs, 3), "g++ -O1")
