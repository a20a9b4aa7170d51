"""Integer network -> Vitis HLS C++ project (bit-exact with the golden model).

Layout of the generated project (``DIR/``)::

    firmware/<top>.h          ap_int types of the inputs/outputs, N_* sizes, prototype
    firmware/<top>.cpp        the top function: one block per op, II=1 pipeline
    firmware/<top>_weights.h  every constant (weights, biases, multipliers, shifts,
                              thresholds, tables) as a partitioned const array
    firmware/qrtl_hls.h       exact helpers: shift-and-round in every rounding
                              mode, minifloat rounding (QONNX FloatQuant rule)
    tb.cpp                    C testbench: reads one vector per line, writes one
                              output line per vector, compares with an expected
                              file when present (exit status 1 on a mismatch)
    tb_data/tb_input.txt      input vectors (raw integers, decimal)
    tb_data/tb_expected.txt   the golden model's outputs for them
    build.tcl                 Vitis HLS: csim, csynth, cosim, export IP
    manifest.json             top, I/O layout and types, per-op types
    README.md

Arithmetic.  Every tensor is a flat C-order array (channels last, batch
excluded: the same element order as the Verilog bus) of ``ap_int<W>`` /
``ap_uint<W>`` with the IR type's width; a binary tensor is ``ap_uint<1>``
(1 <-> +1), a minifloat tensor holds its raw units (multiples of the smallest
subnormal) in a signed integer wide enough for +-max.  Dense / conv / pool /
popcount accumulators are declared at the width proven by interval analysis
(``qat.ir.intervals``); since ap_int arithmetic is two's-complement modular and
the final sum is proven to fit, partial sums may wrap without changing the
result.  Requantization products ``x*mult`` (and left shifts) are computed in
a width derived from the proven input range and the multiplier, so nothing
intermediate overflows (ap_int supports up to AP_INT_MAX_W bits; the header
raises that limit when a product needs it).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from qat.ir import golden
from qat.ir.geometry import op_window
from qat.ir.spec import EmitterRegistry
from qat.ir.intervals import Bounds, analyze
from qat.ir.network import Network, NetworkError, Op, unique_name
from qat.ir.schedule import check_io, parse_reuse
from qat.ir.types import BinaryType, MinifloatType, TensorType, signed_bits_for, unsigned_bits_for

GENERATOR = "qrtl hls.hls_cpp 1"
EMITTERS = EmitterRegistry("HLS C++")  # op kind -> _Gen method writing its loops
DEFAULT_CLOCK_MHZ = 100.0
AP_INT_DEFAULT_MAX_W = 1024
ROUNDING_ENUM = {"half_even": "QRTL_RND_HALF_EVEN", "half_up": "QRTL_RND_HALF_UP",
                 "half_away": "QRTL_RND_HALF_AWAY", "floor": "QRTL_RND_FLOOR",
                 "toward_zero": "QRTL_RND_TOWARD_ZERO"}
CPP_KEYWORDS = {
    "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch",
    "char", "class", "compl", "const", "constexpr", "const_cast", "continue", "decltype", "default", "delete",
    "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for",
    "friend", "goto", "if", "inline", "int", "long", "main", "mutable", "namespace", "new", "noexcept", "not",
    "not_eq", "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register",
    "reinterpret_cast", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast",
    "struct", "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid",
    "typename", "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor",
    "xor_eq", "std", "qrtl"}


class HLSError(NetworkError):
    """The network uses something the HLS generator cannot build exactly, or the C-simulation failed."""


def cname(text: str) -> str:
    """A C identifier for ``text``."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if not s or not (s[0].isalpha() or s[0] == "_"):
        s = "n_" + s
    s = re.sub(r"__+", "_", s)
    if s in CPP_KEYWORDS or s.startswith("ap_") or s.startswith("_"):
        s = "n_" + s.lstrip("_")
    return s


def ap_include_dir() -> Path:
    """The ap_types headers shipped inside the installed hls4ml package."""
    try:
        import hls4ml  # noqa: F401
        base = Path(hls4ml.__file__).parent
    except Exception:  # hls4ml import can fail on a broken TF install: find the files directly
        import importlib.util

        spec = importlib.util.find_spec("hls4ml")
        if spec is None or not spec.submodule_search_locations:
            raise HLSError("hls4ml is not installed: its ap_types headers are needed for the C-simulation "
                           "(pip install hls4ml==1.3.0)") from None
        base = Path(list(spec.submodule_search_locations)[0])
    for cand in (base / "templates" / "vivado" / "ap_types", base / "templates" / "vitis" / "ap_types"):
        if (cand / "ap_int.h").is_file():
            return cand
    found = sorted(base.rglob("ap_int.h"))
    if found:
        return found[0].parent
    raise HLSError(f"no ap_types headers (ap_int.h) inside {base}")


# ---- literals and types ----------------------------------------------------------

def lit(v: int) -> str:
    """A C++ expression for the integer ``v`` (any size)."""
    v = int(v)
    if -(1 << 31) < v < (1 << 31):
        return str(v)
    if -(1 << 63) < v < (1 << 63):
        return f"{v}LL"
    if v == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    w = signed_bits_for(v, v)
    return f'ap_int<{w}>("{v}", 10)'


def ctype_for_range(lo: int, hi: int) -> str:
    if lo >= 0:
        return f"ap_uint<{unsigned_bits_for(hi)}>"
    return f"ap_int<{signed_bits_for(lo, hi)}>"


def width_of(ctype: str) -> int:
    return int(re.search(r"<(\d+)>", ctype).group(1))


def storage_type(t: TensorType) -> str:
    if isinstance(t, BinaryType):
        return "ap_uint<1>"
    if isinstance(t, MinifloatType):
        return f"ap_int<{signed_bits_for(-t.max_units, t.max_units)}>"
    return f"ap_int<{t.bits}>" if t.signed else f"ap_uint<{t.bits}>"


def _flat(arr: np.ndarray, shape: tuple[int, ...]) -> list[int]:
    return [int(v) for v in np.broadcast_to(np.asarray(arr).astype(object), shape).ravel()]


def _per(arr: np.ndarray, shape: tuple[int, ...]) -> tuple[str, list[int]]:
    """Compact form of a parameter broadcast over a tensor: scalar, per channel, or full."""
    full = np.broadcast_to(np.asarray(arr).astype(object), shape)
    flat = [int(v) for v in full.ravel()]
    if len(set(flat)) <= 1:
        return "scalar", flat[:1] or [0]
    c = shape[-1] if shape else 1
    rows = full.reshape(-1, c)
    if all(list(r) == list(rows[0]) for r in rows):
        return "channel", [int(v) for v in rows[0]]
    return "full", flat


def _rd(binary: bool, raw: str) -> str:
    """A raw element as an integer (binary: 1 <-> +1, 0 <-> -1)."""
    return f"({raw} ? ap_int<2>(1) : ap_int<2>(-1))" if binary else raw


def _partition(n: int, r: int) -> str:
    """ARRAY_PARTITION of a weight array of ``n`` elements read by a layer folded over ``r`` clocks:
    complete when unfolded, else n/r blocks of r consecutive weights (one bank per multiplier)."""
    return "complete" if r <= 1 else f"block factor={n // r}"


@dataclass
class Win:
    """A window op's accumulation: ``co`` channels out, ``acc_t acc = init`` (may use ``o``), per tap
    ``tap(raw, acc, widx)`` (``raw(cc)``: the raw input element of channel cc at (iy, ix)), then
    ``finish(out_view, flat_index, acc, depth)``.  ``per_in``: taps loop over input channels ``c``
    (convolutions) rather than one channel ``o`` (pools); ``weights``: the weight array of a MAC."""

    co: int
    init: str
    tap: Callable
    finish: Callable
    acc_t: str
    per_in: bool
    weights: str | None = None


@dataclass
class Tensor:
    name: str
    var: str
    shape: tuple[int, ...]
    type: TensorType
    bounds: Bounds
    ctype: str

    @property
    def n(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def binary(self) -> bool:
        return isinstance(self.type, BinaryType)

    @property
    def lo(self) -> int:
        return self.bounds.min

    @property
    def hi(self) -> int:
        return self.bounds.max

    def rd(self, idx: str) -> str:
        """Read one element as an integer (binary: -1/+1)."""
        return _rd(self.binary, f"{self.var}[{idx}]")

    def value_width(self) -> int:
        """Signed width holding every value of the tensor as read by rd()."""
        if self.binary:
            return 2
        return signed_bits_for(min(self.lo, 0), max(self.hi, 0))


@dataclass
class Project:
    top: str
    files: dict[str, str]
    manifest: dict = field(default_factory=dict)

    def write(self, out_dir: str | Path) -> list[Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in sorted(self.files):
            p = out / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(self.files[name])
            paths.append(p)
        return paths


class _Gen:
    def __init__(self, net: Network, top: str, reuse: dict[str, int] | None = None):
        self.net = net
        self.top = top
        self.reuse = dict(reuse or {})  # layer -> reuse factor R (folded over R clocks)
        self.fold_multipliers: dict[str, int] = {}  # folded layer -> multipliers left
        self.bounds = analyze(net)
        self.consts: list[str] = []  # weight header lines
        self.pragmas: list[str] = []
        self.body: list[str] = []
        self.max_width = 64
        self.used: set[str] = set()
        self.tensors: dict[str, Tensor] = {}
        types, shapes = net.tensor_types(), net.tensor_shapes()
        for name, t in types.items():
            self.tensors[name] = Tensor(name, self.unique("t_" + cname(name)), tuple(shapes[name]), t,
                                        self.bounds[name], storage_type(t))
        self.op_info: dict[str, dict] = {}
        self.functions: list[str] = []  # functions before the top (folded layers, stream processes)

    def unique(self, base: str) -> str:
        return unique_name(base, self.used)

    def note_width(self, w: int) -> None:
        self.max_width = max(self.max_width, int(w))

    def const_array(self, base: str, values: list[int], ctype: str | None = None, partition: str = "complete") -> str:
        """Emit a const array; returns its name.  ``partition``: the ARRAY_PARTITION kind ('complete',
        or 'block factor=F' for a layer folded over R clocks: F banks of R consecutive weights)."""
        name = self.unique(base)
        lo, hi = min(values), max(values)
        ctype = ctype or ctype_for_range(min(lo, 0) if lo < 0 else lo, hi)
        self.note_width(width_of(ctype))
        per_line = 16
        items = [lit(v) for v in values]
        lines = [f"static const {ctype} {name}[{len(values)}] = {{"]
        for k in range(0, len(items), per_line):
            lines.append("    " + ", ".join(items[k:k + per_line]) + ",")
        lines.append("};")
        self.consts += lines
        dim = "dim=0" if partition == "complete" else "dim=1"
        self.pragmas.append(f"#pragma HLS ARRAY_PARTITION variable={name} {partition} {dim}")
        return name

    def param(self, base: str, arr: np.ndarray, shape: tuple[int, ...], chan: str, flat: str) -> str:
        """C++ expression of a parameter broadcast over ``shape``, indexed by channel or flat index."""
        kind, values = _per(arr, shape)
        if kind == "scalar":
            return lit(values[0])
        name = self.const_array(base, values)
        return f"{name}[{chan if kind == 'channel' else flat}]"

    def emit(self, line: str, depth: int = 1) -> None:
        self.body.append("  " * depth + line)

    def write_out(self, out: Tensor, idx: str, expr: str, depth: int) -> None:
        if out.binary:
            self.emit(f"{out.var}[{idx}] = ({expr}) > 0;", depth)
        else:
            self.emit(f"{out.var}[{idx}] = {expr};", depth)

    # ---- ops -----------------------------------------------------------------
    def gen(self) -> None:
        for op in self.net.ops:
            ins = [self.tensors[i] for i in op.inputs]
            out = self.tensors[op.name]
            fn = EMITTERS.get(op.kind)
            if fn is None:
                raise HLSError(f"{op.where()}: no HLS C++ for this op kind")
            self.emit(f"// {op.where()}: {op.type.describe()} {tuple(op.shape)}")
            self.op_info[op.name] = {"kind": op.kind, "c_type": out.ctype, "variable": out.var,
                                     "proven_range": [out.lo, out.hi]}
            if self.reuse.get(op.name, 1) > 1:
                self._gen_folded(op, ins, out, fn)
            else:
                fn(self, op, ins, out)

    def capture(self, fn: Callable[[], None]) -> tuple[list[str], list[str]]:
        """Run ``fn()`` into fresh body and pragma buffers; returns (body lines, pragma lines)."""
        saved = self.body, self.pragmas
        self.body, self.pragmas = [], []
        try:
            fn()
            return self.body, self.pragmas
        finally:
            self.body, self.pragmas = saved

    def _gen_folded(self, op: Op, ins: list[Tensor], out: Tensor, fn) -> None:
        """A folded layer (io parallel) as its own function: PIPELINE II=R with n/R multipliers,
        called from the top (whose II is the largest R)."""
        body, pragmas = self.capture(lambda: fn(self, op, ins, out))
        r = self.reuse[op.name]
        m = self.fold_multipliers[op.name]
        name = self.unique(f"fold_{cname(op.name)}")
        params = [f"const {x.ctype} {x.var}[{x.n}]" for x in ins] + [f"{out.ctype} {out.var}[{out.n}]"]
        self.functions += [f"// {op.where()}: folded over {r} clocks (reuse factor {r}), {m} multipliers",
                           f"static void {name}({', '.join(params)}) {{", "#pragma HLS INLINE off",
                           f"#pragma HLS PIPELINE II={r}",
                           f"#pragma HLS ALLOCATION operation instances=mul limit={m}"] + pragmas + body + ["}", ""]
        self.op_info[op.name].update(reuse=r, multipliers=m, function=name)
        self.emit(f"{name}({', '.join(x.var for x in ins)}, {out.var});")

    def _acc_type(self, op: Op, out: Tensor) -> str:
        t = ctype_for_range(out.lo, out.hi)
        self.note_width(width_of(t))
        self.op_info[op.name]["accumulator"] = t
        return t

    def _geometry(self, op: Op, x: Tensor):
        """(H, W, C, KH, KW, SH, SW, PT, PL, OH, OW) of the op's window (qat.ir.geometry; 1-D as H = 1)."""
        g = op_window(op, x.shape)
        return g.h, g.w, g.c, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.oh, g.ow

    # ---- folding (--reuse R) ------------------------------------------------------
    @staticmethod
    def mults(op: Op) -> int:
        """Multiplications of one output position of a dense / conv layer (the matrix hls4ml's reuse
        factor folds): inputs x outputs of a dense, KH*KW*C x CO of a convolution."""
        return int(np.prod(op.arrays["weight"].shape))

    def reuse_of(self, op: Op, x: Tensor) -> int:
        """The op's reuse factor R, checked: R must divide the layer's multiplications."""
        r = int(self.reuse.get(op.name, 1))
        if r == 1:
            return 1
        n = self.mults(op)
        if n % r:
            raise HLSError(f"--reuse {op.name}={r}: {op.where()} has {n} multiplications per output position "
                           f"({' x '.join(str(v) for v in op.arrays['weight'].shape)}); the reuse factor must "
                           f"divide them (as hls4ml's)")
        return r

    def _folded_mac(self, r: int, n: int, co: int, acc_t: str, init: str, decode: list[str], cond: str | None,
                    tap: str, finish, d: int, base: str = "") -> None:
        """Accumulate ``n`` products into ``co`` accumulators over ``r`` clocks with n/r multipliers:
        clock ir uses weights k = ir + r*im (im < n/r), i.e. bank im of a block partition by n/r.
        ``decode``: lines deriving the operand indices from k (and o = k % co); ``tap``: the statement
        accumulating into acc[o]; ``finish(idx_o, acc_expr, depth)`` writes one output."""
        f = n // r
        self.emit("{", d)
        self.emit(f"{acc_t} acc[{co}];", d + 1)
        self.emit("#pragma HLS ARRAY_PARTITION variable=acc complete dim=0", d + 1)
        self.emit(f"for (int o = 0; o < {co}; o++) acc[o] = {init};", d + 1)
        self.emit(f"for (int ir = 0; ir < {r}; ir++) {{  // {r} clocks", d + 1)
        self.emit(f"for (int im = 0; im < {f}; im++) {{  // {f} multipliers", d + 2)
        self.emit("#pragma HLS UNROLL", d + 3)
        self.emit(f"const int k = {base}ir + {r} * im;", d + 3)
        self.emit(f"const int o = k % {co};", d + 3)
        for line in decode:
            self.emit(line, d + 3)
        if cond:
            self.emit(f"if ({cond}) {tap}", d + 3)
        else:
            self.emit(tap, d + 3)
        self.emit("}", d + 2)
        self.emit("}", d + 1)
        self.emit(f"for (int o = 0; o < {co}; o++) {{", d + 1)
        finish("o", "acc[o]", d + 2)
        self.emit("}", d + 1)
        self.emit("}", d)

    @EMITTERS.register("dense")
    def g_dense(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        x = ins[0]
        w = op.arrays["weight"]
        ci, co = w.shape
        r = self.reuse_of(op, x)
        acc_t = self._acc_type(op, out)
        wn = self.const_array(f"w_{cname(op.name)}", _flat(w, w.shape), partition=_partition(ci * co, r))
        bn = self.const_array(f"b_{cname(op.name)}", _flat(op.arrays["bias"], (co,)))
        pos = x.n // ci  # a dense applies to the last axis of any rank (as numpy's matmul)
        self.emit(f"for (int p = 0; p < {pos}; p++) {{")
        if r > 1:
            self.fold_multipliers[op.name] = pos * ci * co // r
            self._folded_mac(r, ci * co, co, acc_t, f"{bn}[o]", [f"const int i = k / {co};"], None,
                             f"acc[o] += {x.rd(f'p * {ci} + i')} * {wn}[k];",
                             lambda o, a, d: self.write_out(out, f"p * {co} + {o}", a, d), 2)
            self.emit("}")
            return
        self.emit(f"for (int o = 0; o < {co}; o++) {{", 2)
        self.emit(f"{acc_t} acc = {bn}[o];", 3)
        self.emit(f"for (int i = 0; i < {ci}; i++) {{", 3)
        self.emit(f"acc += {x.rd(f'p * {ci} + i')} * {wn}[i * {co} + o];", 4)
        self.emit("}", 3)
        self.write_out(out, f"p * {co} + o", "acc", 3)
        self.emit("}", 2)
        self.emit("}")

    # ---- sliding windows ------------------------------------------------------------
    def window(self, op: Op, x: Tensor) -> "Win":
        """The window op's accumulation, independent of where its input elements come from."""
        return WINDOWS[op.kind](self, op, x, self.tensors[op.name])

    def window_point(self, op: Op, g, win: "Win", raw, ov: Tensor, idx, d: int) -> None:
        """Compute every channel of one output position (``oy``, ``ox`` in scope) into ``ov``.
        ``raw(cc)``: the raw input element at (iy, ix, channel cc); ``idx(o)``: ``ov``'s flat index."""
        r = self.reuse.get(op.name, 1) if win.weights else 1
        if r > 1:
            n = g.kh * g.kw * g.c * win.co
            decode = [f"const int tp = k / {win.co};", f"const int c = tp % {g.c};",
                      f"const int kx = (tp / {g.c}) % {g.kw};", f"const int ky = tp / {g.c * g.kw};",
                      f"const int iy = oy * {g.sh} + ky - {g.pt};", f"const int ix = ox * {g.sw} + kx - {g.pl};"]
            self._folded_mac(r, n, win.co, win.acc_t, win.init, decode,
                             f"iy >= 0 && iy < {g.h} && ix >= 0 && ix < {g.w}", win.tap(raw, "acc[o]", "k"),
                             lambda o, a, dd: win.finish(ov, idx(o), a, dd), d)
            return
        self.emit(f"for (int o = 0; o < {win.co}; o++) {{", d)
        self.emit(f"{win.acc_t} acc = {win.init};", d + 1)
        self.emit(f"for (int ky = 0; ky < {g.kh}; ky++) {{", d + 1)
        self.emit(f"const int iy = oy * {g.sh} + ky - {g.pt};", d + 2)
        self.emit(f"for (int kx = 0; kx < {g.kw}; kx++) {{", d + 2)
        self.emit(f"const int ix = ox * {g.sw} + kx - {g.pl};", d + 3)
        self.emit(f"if (iy >= 0 && iy < {g.h} && ix >= 0 && ix < {g.w}) {{", d + 3)
        widx = f"((ky * {g.kw} + kx) * {g.c} + c) * {win.co} + o"
        if win.per_in:
            self.emit(f"for (int c = 0; c < {g.c}; c++) {{", d + 4)
            self.emit(win.tap(raw, "acc", widx), d + 5)
            self.emit("}", d + 4)
        else:
            self.emit(win.tap(raw, "acc", widx), d + 4)
        self.emit("}", d + 3)
        self.emit("}", d + 2)
        self.emit("}", d + 1)
        win.finish(ov, idx("o"), "acc", d + 1)
        self.emit("}", d)

    def _conv_like(self, op: Op, x: Tensor, out: Tensor) -> None:
        """Every output position of a window op over the whole input array (io parallel)."""
        g = op_window(op, x.shape)
        win = self.window(op, x)
        if win.weights and self.reuse.get(op.name, 1) > 1:
            self.fold_multipliers[op.name] = g.out_positions * g.kh * g.kw * g.c * win.co // self.reuse[op.name]
        self.emit(f"for (int oy = 0; oy < {g.oh}; oy++) {{")
        self.emit(f"for (int ox = 0; ox < {g.ow}; ox++) {{", 2)
        self.window_point(op, g, win, lambda cc: f"{x.var}[(iy * {g.w} + ix) * {g.c} + {cc}]", out,
                          lambda o: f"(oy * {g.ow} + ox) * {win.co} + {o}", 3)
        self.emit("}", 2)
        self.emit("}")

    def w_conv(self, op: Op, x: Tensor, out: Tensor) -> "Win":
        wt = op.arrays["weight"]
        co = wt.shape[-1]
        h, w, c, kh, kw, *_ = self._geometry(op, x)
        r = self.reuse_of(op, x)
        acc_t = self._acc_type(op, out)
        wn = self.const_array(f"w_{cname(op.name)}", _flat(wt, wt.shape), partition=_partition(wt.size, r))
        bn = self.const_array(f"b_{cname(op.name)}", _flat(op.arrays["bias"], (co,)))
        return Win(co, f"{bn}[o]", lambda raw, acc, widx: f"{acc} += {_rd(x.binary, raw('c'))} * {wn}[{widx}];",
                   lambda ov, idx, a, d: self.write_out(ov, idx, a, d), acc_t, True, wn)

    @EMITTERS.register("conv1d", "conv2d", "bconv2d", "maxpool", "avgpool")
    def g_window(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        self._conv_like(op, ins[0], out)

    def _binary_threshold(self, op: Op, co: int, n: int, y: str, out: Tensor, idx: str, depth: int) -> None:
        if "threshold" not in op.arrays:
            self.write_out(out, idx, y, depth)
            return
        t = self.param(f"thr_{cname(op.name)}", op.arrays["threshold"], (co,), "o", "o")
        d = [int(v) for v in np.broadcast_to(op.arrays["direction"], (co,))]
        if all(v > 0 for v in d):
            cond = f"{y} >= {t}"
        elif all(v < 0 for v in d):
            cond = f"{y} <= {t}"
        else:
            dn = self.param(f"dir_{cname(op.name)}", op.arrays["direction"], (co,), "o", "o")
            cond = f"({dn} > 0 ? ({y} >= {t}) : ({y} <= {t}))"
        self.emit(f"{out.var}[{idx}] = ({cond}) ? 1 : 0;", depth)

    @EMITTERS.register("bdense")
    def g_bdense(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        x = ins[0]
        w = op.arrays["weight"]
        ci, co = w.shape
        pc_t = f"ap_uint<{unsigned_bits_for(ci)}>"
        y_t = f"ap_int<{signed_bits_for(-ci, ci)}>"
        wn = self.const_array(f"w_{cname(op.name)}", _flat(w, w.shape), "ap_uint<1>")
        if "threshold" not in op.arrays:
            self._acc_type(op, out)
        pos = x.n // ci
        self.emit(f"for (int p = 0; p < {pos}; p++) {{")
        self.emit(f"for (int o = 0; o < {co}; o++) {{", 2)
        self.emit(f"{pc_t} pc = 0;", 3)
        self.emit(f"for (int i = 0; i < {ci}; i++) {{", 3)
        self.emit(f"pc += ({x.var}[p * {ci} + i] == {wn}[i * {co} + o]) ? 1 : 0;  // XNOR", 4)
        self.emit("}", 3)
        self.emit(f"const {y_t} y = {y_t}(2 * pc) - {ci};", 3)
        self._binary_threshold(op, co, ci, "y", out, f"p * {co} + o", 3)
        self.emit("}", 2)
        self.emit("}")

    def w_bconv2d(self, op: Op, x: Tensor, out: Tensor) -> "Win":
        wt = op.arrays["weight"]
        co = wt.shape[-1]
        h, w, c, kh, kw, *_ = self._geometry(op, x)
        n = kh * kw * c
        pc_t = f"ap_uint<{unsigned_bits_for(n)}>"
        y_t = f"ap_int<{signed_bits_for(-n, n)}>"
        wn = self.const_array(f"w_{cname(op.name)}", _flat(wt, wt.shape), "ap_uint<1>")
        if "threshold" not in op.arrays:
            self._acc_type(op, out)

        def finish(ov: Tensor, idx: str, acc: str, d: int) -> None:
            self.emit(f"const {y_t} y = {y_t}(2 * {acc}) - {n};", d)
            self._binary_threshold(op, co, n, "y", ov, idx, d)

        return Win(co, "0", lambda raw, acc, widx: f"{acc} += ({raw('c')} == {wn}[{widx}]) ? 1 : 0;  // XNOR",
                   finish, pc_t, True)

    def w_maxpool(self, op: Op, x: Tensor, out: Tensor) -> "Win":
        c = x.shape[-1]
        m_t = f"ap_int<{x.value_width()}>"
        init = lit(x.lo if not x.binary else -1)  # every window holds at least one real element
        return Win(c, init, lambda raw, acc, widx: f"if ({_rd(x.binary, raw('o'))} > {acc}) {acc} = "
                                                   f"{_rd(x.binary, raw('o'))};",
                   lambda ov, idx, a, d: self.write_out(ov, idx, a, d), m_t, False)

    def w_avgpool(self, op: Op, x: Tensor, out: Tensor) -> "Win":
        c = x.shape[-1]
        acc_t = self._acc_type(op, out)
        return Win(c, "0", lambda raw, acc, widx: f"{acc} += {_rd(x.binary, raw('o'))};",
                   lambda ov, idx, a, d: self.write_out(ov, idx, a, d), acc_t, False)

    @EMITTERS.register("reshape")
    def g_reshape(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        x = ins[0]
        self.emit(f"for (int i = 0; i < {out.n}; i++) {{")
        if out.binary == x.binary:
            self.emit(f"{out.var}[i] = {x.var}[i];", 2)
        else:
            self.write_out(out, "i", x.rd("i"), 2)
        self.emit("}")

    @EMITTERS.register("concat")
    def g_concat(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        ctot = out.shape[-1]
        pos = out.n // ctot
        self.emit(f"for (int p = 0; p < {pos}; p++) {{")
        off = 0
        for x in ins:
            c = x.shape[-1]
            self.emit(f"for (int c = 0; c < {c}; c++) {{", 2)
            if out.binary == x.binary:
                self.emit(f"{out.var}[p * {ctot} + {off} + c] = {x.var}[p * {c} + c];", 3)
            else:
                self.write_out(out, f"p * {ctot} + {off} + c", x.rd(f"p * {c} + c"), 3)
            self.emit("}", 2)
            off += c
        self.emit("}")

    @EMITTERS.register("add")
    def g_add(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        acc_t = self._acc_type(op, out)
        self.emit(f"for (int i = 0; i < {out.n}; i++) {{")
        self.emit(f"{acc_t} acc = {ins[0].rd('i')};", 2)
        for x in ins[1:]:
            self.emit(f"acc += {x.rd('i')};", 2)
        self.write_out(out, "i", "acc", 2)
        self.emit("}")

    def _clamp_out(self, out: Tensor, idx: str, v: str, vlo: int, vhi: int, lo: int, hi: int, depth: int) -> None:
        """out[idx] = min(max(v, lo), hi), comparisons only where the value range needs them."""
        below, above = vlo < lo, vhi > hi
        if below and above:
            self.emit(f"if ({v} < {lit(lo)}) {out.var}[{idx}] = {lit(lo)};", depth)
            self.emit(f"else if ({v} > {lit(hi)}) {out.var}[{idx}] = {lit(hi)};", depth)
            self.emit(f"else {out.var}[{idx}] = {v};", depth)
        elif below:
            self.emit(f"{out.var}[{idx}] = ({v} < {lit(lo)}) ? {out.ctype}({lit(lo)}) : {out.ctype}({v});", depth)
        elif above:
            self.emit(f"{out.var}[{idx}] = ({v} > {lit(hi)}) ? {out.ctype}({lit(hi)}) : {out.ctype}({v});", depth)
        else:
            self.emit(f"{out.var}[{idx}] = {v};", depth)

    @EMITTERS.register("clip")
    def g_clip(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        x = ins[0]
        lo, hi = int(op.attr("lo")), int(op.attr("hi"))
        v_t = f"ap_int<{x.value_width()}>"
        self.emit(f"for (int i = 0; i < {out.n}; i++) {{")
        self.emit(f"const {v_t} v = {x.rd('i')};", 2)
        if out.binary:
            self.emit(f"{out.var}[i] = ((v < {lit(lo)}) ? {v_t}({lit(lo)}) : (v > {lit(hi)}) ? {v_t}({lit(hi)}) "
                      f": v) > 0;", 2)
        else:
            self._clamp_out(out, "i", "v", x.lo if not x.binary else -1, x.hi if not x.binary else 1, lo, hi, 2)
        self.emit("}")

    @EMITTERS.register("requant")
    def g_requant(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        x = ins[0]
        shape = tuple(op.shape)
        c = shape[-1] if shape else 1
        mult = [int(v) for v in np.broadcast_to(np.asarray(op.arrays["mult"]).astype(object), shape).ravel()]
        shift = [int(v) for v in np.broadcast_to(np.asarray(op.arrays["shift"]).astype(object), shape).ravel()]
        rounding = op.attr("rounding")
        # exact per-element ranges of the product n = x*mult (mult > 0) and of r = round(n / 2^shift)
        m_arr = np.array(mult, dtype=object)
        s_arr = np.array(shift, dtype=np.int64)
        p_lo = x.bounds.lo.ravel().astype(object) * m_arr
        p_hi = x.bounds.hi.ravel().astype(object) * m_arr
        r_lo = golden.shift_round(p_lo, s_arr, rounding)
        r_hi = golden.shift_round(p_hi, s_arr, rounding)
        lo_all = min(min(int(v) for v in p_lo), min(int(v) for v in r_lo), 0)
        hi_all = max(max(int(v) for v in p_hi), max(int(v) for v in r_hi), 0)
        pw = max(signed_bits_for(lo_all, hi_all), max(shift) + 2, 2)
        rounding = op.attr("rounding")
        mode = ROUNDING_ENUM[rounding]
        mexpr = self.param(f"mult_{cname(op.name)}", op.arrays["mult"], shape, "c", "i")
        sexpr = self.param(f"shift_{cname(op.name)}", op.arrays["shift"], shape, "c", "i")
        minifloat = isinstance(op.type, MinifloatType)
        if minifloat:
            t = op.type
            maxbl = int(t.max_units).bit_length()
            left = max(0, max(-(s + t.unit_exp) for s in shift))
            pw = max(pw + left, t.man_bits + maxbl + 4) + 2
        self.note_width(pw)
        p_t = f"ap_int<{pw}>"
        self.op_info[op.name]["product"] = p_t
        self.emit(f"for (int p = 0; p < {out.n // c}; p++) {{")
        self.emit(f"for (int c = 0; c < {c}; c++) {{", 2)
        self.emit(f"const int i = p * {c} + c;", 3)
        self.emit(f"const {p_t} n = {p_t}({x.rd('i')})" + ("" if mexpr == "1" else f" * {mexpr}") + ";", 3)
        if minifloat:
            t = op.type
            self.emit(f"{out.var}[i] = qrtl::minifloat_round<{mode}, {pw}>(n, {sexpr}, {t.man_bits}, {t.unit_exp}, "
                      f"{int(t.max_units).bit_length()}, {p_t}({lit(t.max_units)}));", 3)
        else:
            self.emit(f"const {p_t} r = qrtl::shift_round<{mode}, {pw}>(n, {sexpr});", 3)
            if op.attr("overflow") == "wrap":
                self.emit(f"{out.var}[i] = r;  // wraps to {out.ctype}", 3)
            else:
                lo = int(op.attr("lo"))
                hi = int(op.attr("hi"))
                self._clamp_out(out, "i", "r", min(int(v) for v in r_lo), max(int(v) for v in r_hi), lo, hi, 3)
        self.emit("}", 2)
        self.emit("}")

    @EMITTERS.register("threshold")
    def g_threshold(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        x = ins[0]
        t = np.asarray(op.arrays["thresholds"])
        c = out.shape[-1] if out.shape else 1
        n_lv = t.shape[1]
        step = int(op.attr("step"))
        base = [int(v) for v in np.broadcast_to(np.asarray(op.arrays["base"]).astype(object), (c,))]
        dirs = [int(v) for v in np.broadcast_to(np.asarray(op.arrays["direction"]).astype(object), (c,))]
        tv = [int(v) for v in t.astype(object).ravel()] or [0]
        thr_t = f"ap_int<{max(signed_bits_for(min(tv), max(tv)), 2)}>"
        tn = self.const_array(f"thr_{cname(op.name)}", tv, thr_t) if n_lv else None
        yw = max(signed_bits_for(min(base + [out.lo]), max(base + [out.hi])),
                 signed_bits_for(-abs(step) * n_lv, abs(step) * n_lv)) + 2
        y_t = f"ap_int<{yw}>"
        bexpr = self.param(f"base_{cname(op.name)}", np.array(base, dtype=object), (c,), "c", "c")
        dexpr = self.param(f"dir_{cname(op.name)}", np.array(dirs, dtype=object), (c,), "c", "c")
        row = "c" if t.shape[0] > 1 else "0"
        self.emit(f"for (int p = 0; p < {out.n // c}; p++) {{")
        self.emit(f"for (int c = 0; c < {c}; c++) {{", 2)
        self.emit(f"const int i = p * {c} + c;", 3)
        self.emit(f"ap_uint<{unsigned_bits_for(max(n_lv, 1))}> cnt = 0;", 3)
        if n_lv:
            self.emit(f"for (int l = 0; l < {n_lv}; l++) {{", 3)
            self.emit(f"cnt += ({x.rd('i')} >= {tn}[{row} * {n_lv} + l]) ? 1 : 0;", 4)
            self.emit("}", 3)
        self.emit(f"const {y_t} y = {y_t}({bexpr}) + {y_t}({dexpr}) * {y_t}({lit(step)}) * {y_t}(cnt);", 3)
        self.write_out(out, "i", "y", 3)
        self.emit("}", 2)
        self.emit("}")

    @EMITTERS.register("lut")
    def g_lut(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        x = ins[0]
        table = [int(v) for v in np.asarray(op.arrays["table"]).astype(object).ravel()]
        in_lo = int(op.attr("in_lo"))
        # only the entries the input can reach
        xlo, xhi = (-1, 1) if x.binary else (x.lo, x.hi)
        tn = self.const_array(f"lut_{cname(op.name)}", table[xlo - in_lo:xhi - in_lo + 1])
        kw = max(x.value_width(), signed_bits_for(xlo, xlo)) + 1
        self.emit(f"for (int i = 0; i < {out.n}; i++) {{")
        self.emit(f"const int k = (ap_int<{kw}>({x.rd('i')}) - {lit(xlo)}).to_int();", 2)
        self.write_out(out, "i", f"{tn}[k]", 2)
        self.emit("}")

    @EMITTERS.register("argmax")
    def g_argmax(self, op: Op, ins: list[Tensor], out: Tensor) -> None:
        x = ins[0]
        c = x.shape[-1]
        scale = np.broadcast_to(np.asarray(x.type.scale, dtype=np.float64), (c,))
        # (a minifloat's unit factor 2^(1-bias-M) is common to all channels)
        vw = x.value_width()
        if len(set(float(s) for s in scale)) == 1:
            factors = None
            v_t = f"ap_int<{vw}>"
        else:
            # every float64 scale is num_c / 2^k_c exactly; compare x_c * num_c * 2^(kmax - k_c) as integers
            fr = [Fraction(float(s)) for s in scale]
            kmax = max(f.denominator.bit_length() - 1 for f in fr)
            factors = [f.numerator << (kmax - (f.denominator.bit_length() - 1)) for f in fr]
            fw = signed_bits_for(0, max(factors))
            if vw + fw > 16384:
                raise HLSError(f"{op.where()}: per-channel scales span too many octaves for an exact comparison")
            v_t = f"ap_int<{vw + fw}>"
            self.note_width(vw + fw)
        fn = self.const_array(f"scale_{cname(op.name)}", factors) if factors else None
        self.emit(f"for (int p = 0; p < {x.n // c}; p++) {{")
        first = x.rd(f"p * {c}") if not fn else f"{v_t}({x.rd(f'p * {c}')}) * {fn}[0]"
        self.emit(f"{v_t} best = {first};", 2)
        self.emit(f"{out.ctype} idx = 0;", 2)
        self.emit(f"for (int c = 1; c < {c}; c++) {{", 2)
        val = x.rd(f"p * {c} + c") if not fn else f"{v_t}({x.rd(f'p * {c} + c')}) * {fn}[c]"
        self.emit(f"const {v_t} v = {val};", 3)
        self.emit("if (v > best) { best = v; idx = c; }  // first index wins ties", 3)
        self.emit("}", 2)
        self.emit(f"{out.var}[p] = idx;", 2)
        self.emit("}")


WINDOWS = {"conv1d": _Gen.w_conv, "conv2d": _Gen.w_conv, "bconv2d": _Gen.w_bconv2d, "maxpool": _Gen.w_maxpool,
           "avgpool": _Gen.w_avgpool}


# ---- --io stream ---------------------------------------------------------------------------
# Every tensor travels as a stream of chunks (qrtl_chunk<T, N>): a spatial tensor one pixel (all its
# channels) per read, a flat one in the pieces its producer makes.  Window ops keep a circular buffer
# of input rows (line buffer) and compute one output pixel when its last input pixel has arrived;
# per-pixel ops run once per pixel; a dense accumulates over the chunks of its (flattened) input;
# anything else gathers its whole input.  Every process is a function of the top's DATAFLOW region.

STREAM_PIXELWISE = ("requant", "clip", "threshold", "lut", "add", "concat", "bdense")


def _last(shape: tuple[int, ...]) -> int:
    return int(shape[-1]) if shape else 1


def stream_schedule(g) -> tuple[int, int]:
    """(iterations T, line-buffer rows RB) of a window op's stream process over geometry ``g``.

    Iteration t reads input pixel t (t < H*W) into row (t / W) % RB, then writes the next output
    pixel (raster order) if its last input pixel has arrived; at most one output per iteration.
    RB is the most rows any output still needs when it is written (the process's C code follows
    exactly this schedule, so the buffer never loses a row in use)."""
    hw, n_out = g.h * g.w, g.oh * g.ow
    t, nxt, rb = 0, 0, 1
    while nxt < n_out:
        seen = min(t, hw - 1)
        oy, ox = divmod(nxt, g.ow)
        ry = min(oy * g.sh - g.pt + g.kh - 1, g.h - 1)
        rx = min(ox * g.sw - g.pl + g.kw - 1, g.w - 1)
        if ry * g.w + rx <= seen:
            lo = max(0, oy * g.sh - g.pt)
            if lo <= ry:
                rb = max(rb, seen // g.w - lo + 1)
            nxt += 1
        t += 1
    return max(t, hw), rb


class _Stream:
    """The --io stream top: one process (function) per op, streams between them."""

    def __init__(self, g: _Gen):
        self.g = g
        self.net = g.net
        self.decls: list[str] = []  # local streams of the top
        self.calls: list[str] = []  # process calls, in execution order
        self.clocks: dict[str, int] = {}  # process -> clocks per inference (its initiation interval)
        self.chunk: dict[str, int] = {}  # tensor -> elements per stream read as its producer writes it
        self.reads: dict[tuple[str, int], tuple[str, int]] = {}  # (op, input k) -> (stream, chunk)
        self.writes: dict[str, list[str]] = {}  # tensor -> streams its producer writes
        self.later: list[tuple] = []  # re-chunking processes to emit after the current producer
        self._clocks = 1  # clocks per inference of the process being emitted (set by its p_* method)

    # -- planning ----------------------------------------------------------------
    def kind(self, op: Op) -> str:
        """How the op is streamed: window, dense, reshape, pixel (once per pixel) or whole."""
        if op.kind in WINDOWS:
            return "window"
        if op.kind in ("dense", "reshape"):
            return op.kind
        ts = [self.g.tensors[i] for i in op.inputs] + [self.g.tensors[op.name]]
        if op.kind not in STREAM_PIXELWISE or any(not t.shape for t in ts):
            return "whole"
        if len({t.n // _last(t.shape) for t in ts}) != 1:
            return "whole"
        if op.kind == "requant" and any(_per(op.arrays[a], tuple(op.shape))[0] == "full" for a in ("mult", "shift")):
            return "whole"  # per-element (not per-channel) parameters: the op needs the whole tensor
        return "pixel"

    def need(self, op: Op, k: int) -> int:
        """Chunk size the op reads its input k in."""
        x = self.g.tensors[op.inputs[k]]
        kind = self.kind(op)
        have = self.chunk[x.name]
        if kind == "window" or kind == "pixel":
            return _last(x.shape)
        if kind == "dense":
            ci = op.arrays["weight"].shape[0]
            return have if ci % have == 0 else ci
        if kind == "reshape":
            return have
        return x.n

    def out_chunk(self, op: Op) -> int:
        t = self.g.tensors[op.name]
        kind = self.kind(op)
        if kind == "reshape":
            return self.chunk[op.inputs[0]]
        return t.n if kind == "whole" else _last(t.shape)

    def ck(self, t: Tensor, n: int) -> str:
        return f"qrtl_chunk<{t.ctype}, {n}>"

    def local_stream(self, base: str, t: Tensor, n: int, depth: int) -> str:
        name = self.g.unique(base)
        self.decls += [f"  hls::stream<{self.ck(t, n)}> {name}(\"{name}\");",
                       f"#pragma HLS STREAM variable={name} depth={depth}"]
        return name

    def route(self, tname: str, source: str | None) -> None:
        """Streams from tensor ``tname``'s producer to each consumer (fan-out: one stream per consumer,
        re-chunked where the consumer reads other chunk sizes).  ``source``: the top's input stream."""
        t = self.g.tensors[tname]
        have = self.chunk[tname]
        edges = [(op, k) for op in self.net.ops for k, i in enumerate(op.inputs) if i == tname]
        outs = [k for k, o in enumerate(self.net.outputs) if o == tname]
        depth = max(2, t.n // have) if len(edges) + len(outs) > 1 else 2
        writes: list[str] = []
        base = f"s_{cname(tname)}"
        for op, k in edges:
            need = self.need(op, k)
            if source is not None and len(edges) == 1 and not outs and need == have:
                self.reads[(op.name, k)] = (source, have)
                return
            target = self.local_stream(base, t, need, depth)
            w = target if need == have else self.local_stream(base + "_raw", t, have, depth)
            if w != target:
                self.later.append((w, target, t, have, need))
            writes.append(w)
            self.reads[(op.name, k)] = (target, need)
        for k in outs:
            need = _last(t.shape)
            target = f"out{k}"
            w = target if need == have else self.local_stream(base + "_raw", t, have, depth)
            if w != target:
                self.later.append((w, target, t, have, need))
            writes.append(w)
        if source is not None:
            self.process_fanout(t, source, writes, have)
        else:
            self.writes[tname] = writes

    def flush_rechunks(self) -> None:
        for src, dst, t, a, b in self.later:
            self.process_rechunk(t, src, dst, a, b)
        self.later = []

    # -- processes ------------------------------------------------------------------
    def function(self, base: str, op_where: str, ins: list[tuple[str, str]], outs: list[tuple[str, str]],
                 pragmas: list[str], body: list[str], clocks: int) -> None:
        """Emit a process ``base`` reading streams ins [(type, argument)] and writing outs; call it."""
        name = self.g.unique(base)
        params = [f"hls::stream<{ty}> &i{k}" for k, (ty, _) in enumerate(ins)] + \
                 [f"hls::stream<{ty}> &o{k}" for k, (ty, _) in enumerate(outs)]
        self.g.functions += [f"// {op_where}: {clocks} clocks per inference",
                             f"static void {name}({', '.join(params)}) {{"] + pragmas + body + ["}", ""]
        self.calls.append(f"  {name}({', '.join([a for _, a in ins] + [a for _, a in outs])});")
        self.clocks[name] = clocks

    def write_all(self, n_outs: int, var: str, d: str) -> list[str]:
        return [f"{d}o{j}.write({var});" for j in range(n_outs)]

    def process_fanout(self, t: Tensor, source: str, writes: list[str], n: int) -> None:
        ty = self.ck(t, n)
        nch = t.n // n
        body = [f"  for (int j = 0; j < {nch}; j++) {{", "#pragma HLS PIPELINE II=1", f"    const {ty} v = i0.read();"]
        body += self.write_all(len(writes), "v", "    ") + ["  }"]
        self.function(f"fanout_{cname(t.name)}", f"input '{t.name}' to {len(writes)} consumers", [(ty, source)],
                      [(ty, w) for w in writes], [], body, nch)

    def process_rechunk(self, t: Tensor, src: str, dst: str, a: int, b: int) -> None:
        """Re-chunk ``t`` from reads of ``a`` to reads of ``b`` elements through a buffer of the tensor."""
        ta, tb = self.ck(t, a), self.ck(t, b)
        body = [f"  {t.ctype} buf[{t.n}];",
                f"  for (int j = 0; j < {t.n // a}; j++) {{", "#pragma HLS PIPELINE II=1",
                f"    const {ta} v = i0.read();",
                f"    for (int u = 0; u < {a}; u++) buf[j * {a} + u] = v.data[u];", "  }",
                f"  for (int j = 0; j < {t.n // b}; j++) {{", "#pragma HLS PIPELINE II=1",
                f"    {tb} v;", f"    for (int u = 0; u < {b}; u++) v.data[u] = buf[j * {b} + u];",
                "    o0.write(v);", "  }"]
        self.function(f"rechunk_{cname(t.name)}", f"'{t.name}' from {a} to {b} elements per read",
                      [(ta, src)], [(tb, dst)], [], body, t.n // a + t.n // b)

    def view(self, t: Tensor, var: str, n: int) -> Tensor:
        """``t`` seen through one chunk of ``n`` elements (its last axis): per-channel hull bounds."""
        c = n
        lo = np.asarray(t.bounds.lo, dtype=object).reshape(-1, c).min(axis=0)
        hi = np.asarray(t.bounds.hi, dtype=object).reshape(-1, c).max(axis=0)
        return Tensor(t.name, var, (c,), t.type, Bounds(lo, hi), t.ctype)

    def gen(self) -> None:
        for k, i in enumerate(self.net.inputs):
            if len(i.shape) < 2:
                raise HLSError(f"--io stream: input '{i.name}' has shape {tuple(i.shape)}, not spatial (streaming "
                               f"reads one pixel of all channels at a time: (W, C) or (H, W, C))")
            self.chunk[i.name] = _last(tuple(i.shape))
            self.route(i.name, f"in{k}")
        self.flush_rechunks()
        g = self.g
        for op in self.net.ops:
            ins = [g.tensors[i] for i in op.inputs]
            out = g.tensors[op.name]
            if EMITTERS.get(op.kind) is None:
                raise HLSError(f"{op.where()}: no HLS C++ for this op kind")
            g.op_info[op.name] = {"kind": op.kind, "c_type": out.ctype, "variable": out.var,
                                  "proven_range": [out.lo, out.hi], "stream": self.kind(op)}
            self.chunk[op.name] = self.out_chunk(op)
            self.route(op.name, None)
            srcs = [self.reads[(op.name, k)] for k in range(len(op.inputs))]
            outs = [(self.ck(out, self.chunk[op.name]), w) for w in self.writes[op.name]]
            ins_t = [(self.ck(x, n), s) for x, (s, n) in zip(ins, srcs)]
            body, pragmas = g.capture(lambda: getattr(self, "p_" + self.kind(op))(op, ins, out, srcs, len(outs)))
            g.op_info[op.name]["stream_chunk"] = self.chunk[op.name]
            self.function(f"proc_{cname(op.name)}", op.where(), ins_t, outs, pragmas, body, self._clocks)
            self.flush_rechunks()

    def p_window(self, op: Op, ins: list[Tensor], out: Tensor, srcs, n_outs: int) -> None:
        g = self.g
        x = ins[0]
        geo = op_window(op, x.shape)
        t_iter, rb = stream_schedule(geo)
        win = g.window(op, x)
        r = g.reuse.get(op.name, 1) if win.weights else 1
        if r > 1:
            g.fold_multipliers[op.name] = geo.kh * geo.kw * geo.c * win.co // r
            g.op_info[op.name].update(reuse=r, multipliers=g.fold_multipliers[op.name])
            g.pragmas.append(f"#pragma HLS ALLOCATION operation instances=mul limit={g.fold_multipliers[op.name]}")
        hw = geo.h * geo.w
        g.op_info[op.name].update(line_buffer_rows=rb, iterations=t_iter)
        self._clocks = t_iter * r
        e = g.emit
        e(f"{x.ctype} lb[{rb}][{geo.w}][{geo.c}];  // line buffer: the last {rb} input rows")
        e("#pragma HLS ARRAY_PARTITION variable=lb complete dim=1")  # rows and channels: all at once;
        e(f"#pragma HLS ARRAY_PARTITION variable=lb cyclic factor={geo.kw} dim=2")  # KW adjacent columns
        e("#pragma HLS ARRAY_PARTITION variable=lb complete dim=3")
        e("int in_y = 0, in_x = 0;  // next input pixel")
        e("int oy = 0, ox = 0;  // next output pixel")
        e(f"for (int t = 0; t < {t_iter}; t++) {{")
        e(f"#pragma HLS PIPELINE II={r}", 2)
        e(f"if (t < {hw}) {{", 2)
        e(f"const {self.ck(x, geo.c)} xin = i0.read();", 3)
        e(f"for (int c = 0; c < {geo.c}; c++) lb[in_y % {rb}][in_x][c] = xin.data[c];", 3)
        e(f"if (++in_x == {geo.w}) {{ in_x = 0; in_y++; }}", 3)
        e("}", 2)
        e(f"const int seen = t < {hw} ? t : {hw - 1};  // newest input pixel held", 2)
        e(f"int ry = oy * {geo.sh} + {geo.kh - 1 - geo.pt};", 2)
        e(f"if (ry > {geo.h - 1}) ry = {geo.h - 1};", 2)
        e(f"int rx = ox * {geo.sw} + {geo.kw - 1 - geo.pl};", 2)
        e(f"if (rx > {geo.w - 1}) rx = {geo.w - 1};", 2)
        e(f"if (oy < {geo.oh} && ry * {geo.w} + rx <= seen) {{  // the output's last input pixel has arrived", 2)
        ov = Tensor(out.name, "yout.data", (win.co,), out.type, out.bounds, out.ctype)
        e(f"{self.ck(out, win.co)} yout;", 3)
        g.window_point(op, geo, win, lambda cc: f"lb[iy % {rb}][ix][{cc}]", ov, lambda o: o, 3)
        for line in self.write_all(n_outs, "yout", ""):
            e(line, 3)
        e(f"if (++ox == {geo.ow}) {{ ox = 0; oy++; }}", 3)
        e("}", 2)
        e("}")

    def p_dense(self, op: Op, ins: list[Tensor], out: Tensor, srcs, n_outs: int) -> None:
        g = self.g
        x = ins[0]
        w = op.arrays["weight"]
        ci, co = w.shape
        ch = srcs[0][1]
        r = g.reuse_of(op, x)
        if (ch * co) % r:
            raise HLSError(f"--reuse {op.name}={r}: with --io stream {op.where()} takes {ch} inputs per read "
                           f"({ch} x {co} = {ch * co} multiplications); the reuse factor must divide them")
        acc_t = g._acc_type(op, out)
        wn = g.const_array(f"w_{cname(op.name)}", _flat(w, w.shape), partition=_partition(ci * co, r))
        bn = g.const_array(f"b_{cname(op.name)}", _flat(op.arrays["bias"], (co,)))
        nch = x.n // ch
        self._clocks = nch * r
        if r > 1:
            g.fold_multipliers[op.name] = ch * co // r
            g.op_info[op.name].update(reuse=r, multipliers=ch * co // r)
            g.pragmas.append(f"#pragma HLS ALLOCATION operation instances=mul limit={ch * co // r}")
        xv = Tensor(x.name, "xin.data", (ch,), x.type, x.bounds, x.ctype)
        ov = Tensor(out.name, "yout.data", (co,), out.type, out.bounds, out.ctype)
        e = g.emit
        e(f"{acc_t} acc[{co}];")
        e("#pragma HLS ARRAY_PARTITION variable=acc complete dim=0")
        e(f"for (int j = 0; j < {nch}; j++) {{  // {ch} of the {ci} inputs per read")
        e(f"#pragma HLS PIPELINE II={r}", 2)
        e(f"const {self.ck(x, ch)} xin = i0.read();", 2)
        e(f"const int base = (j * {ch}) % {ci};  // index of xin.data[0] among the inputs", 2)
        e(f"if (base == 0) for (int o = 0; o < {co}; o++) acc[o] = {bn}[o];", 2)
        if r == 1:
            e(f"for (int u = 0; u < {ch}; u++) {{", 2)
            e(f"for (int o = 0; o < {co}; o++) acc[o] += {xv.rd('u')} * {wn}[(base + u) * {co} + o];", 3)
            e("}", 2)
        else:
            f = ch * co // r
            e(f"for (int ir = 0; ir < {r}; ir++) {{  // {r} clocks", 2)
            e(f"for (int im = 0; im < {f}; im++) {{  // {f} multipliers", 3)
            e("#pragma HLS UNROLL", 4)
            e(f"const int k = ir + {r} * im;", 4)
            e(f"acc[k % {co}] += {xv.rd(f'k / {co}')} * {wn}[base * {co} + k];", 4)
            e("}", 3)
            e("}", 2)
        e(f"if (base + {ch} == {ci}) {{", 2)
        e(f"{self.ck(out, co)} yout;", 3)
        e(f"for (int o = 0; o < {co}; o++) {{", 3)
        g.write_out(ov, "o", "acc[o]", 4)
        e("}", 3)
        for line in self.write_all(n_outs, "yout", ""):
            e(line, 3)
        e("}", 2)
        e("}")

    def p_reshape(self, op: Op, ins: list[Tensor], out: Tensor, srcs, n_outs: int) -> None:
        x = ins[0]
        ch = srcs[0][1]
        self._clocks = x.n // ch
        xv = Tensor(x.name, "xin.data", (ch,), x.type, x.bounds, x.ctype)
        ov = Tensor(out.name, "yout.data", (ch,), out.type, out.bounds, out.ctype)
        e = self.g.emit
        e(f"for (int j = 0; j < {x.n // ch}; j++) {{  // same element order: pass the reads on")
        e("#pragma HLS PIPELINE II=1", 2)
        e(f"const {self.ck(x, ch)} xin = i0.read();", 2)
        e(f"{self.ck(out, ch)} yout;", 2)
        e(f"for (int u = 0; u < {ch}; u++) {{", 2)
        if out.binary == x.binary:
            e("yout.data[u] = xin.data[u];", 3)
        else:
            self.g.write_out(ov, "u", xv.rd("u"), 3)
        e("}", 2)
        for line in self.write_all(n_outs, "yout", ""):
            e(line, 2)
        e("}")

    def p_pixel(self, op: Op, ins: list[Tensor], out: Tensor, srcs, n_outs: int, whole: bool = False) -> None:
        """Once per pixel (``whole``: once per inference): read every input's chunk into a local array,
        run the op's ordinary emitter on one pixel, write the output's chunk."""
        g = self.g
        e = g.emit
        n_px = 1 if whole else out.n // _last(out.shape)
        self._clocks = n_px
        seen: dict[str, Tensor] = {}
        views = []
        for k, (x, (s, n)) in enumerate(zip(ins, srcs)):
            if x.name not in seen:
                seen[x.name] = x if whole else self.view(x, x.var, n)
            views.append(seen[x.name])
        ov = out if whole else self.view(out, out.var, _last(out.shape))
        pop = op
        if not whole:
            arrays = dict(op.arrays)
            if op.kind == "requant":
                for a in ("mult", "shift"):
                    _, vals = _per(op.arrays[a], tuple(op.shape))
                    arrays[a] = np.array(vals, dtype=object)
            pop = Op(op.name, op.kind, list(op.inputs), ov.shape, op.type, dict(op.attrs), arrays, op.source)
        e(f"for (int px = 0; px < {n_px}; px++) {{  // one {'inference' if whole else 'pixel'} per iteration")
        e("#pragma HLS PIPELINE II=1", 2)
        done: set[str] = set()
        for k, (x, v) in enumerate(zip(ins, views)):
            n = srcs[k][1]
            if x.name in done:
                e(f"(void)i{k}.read();  // the same tensor again", 2)
                continue
            done.add(x.name)
            e(f"{x.ctype} {v.var}[{n}];", 2)
            e(f"{{ const {self.ck(x, n)} v = i{k}.read(); for (int u = 0; u < {n}; u++) {v.var}[u] = v.data[u]; }}",
              2)
        e(f"{out.ctype} {ov.var}[{ov.n}];", 2)
        body, pragmas = g.capture(lambda: EMITTERS.get(op.kind)(g, pop, views, ov))
        g.body += ["    " + ln for ln in body]
        g.pragmas += pragmas
        e(f"{self.ck(out, ov.n)} yout;", 2)
        e(f"for (int u = 0; u < {ov.n}; u++) yout.data[u] = {ov.var}[u];", 2)
        for line in self.write_all(n_outs, "yout", ""):
            e(line, 2)
        e("}")

    def p_whole(self, op: Op, ins: list[Tensor], out: Tensor, srcs, n_outs: int) -> None:
        self.p_pixel(op, ins, out, srcs, n_outs, whole=True)


HELPERS = r"""// qrtl_hls.h: exact integer helpers for qrtl-generated HLS C++ (generated by qrtl hls.hls_cpp 1)
#ifndef QRTL_HLS_H
#define QRTL_HLS_H
#include "ap_int.h"

#define QRTL_RND_HALF_EVEN 0
#define QRTL_RND_HALF_UP 1
#define QRTL_RND_HALF_AWAY 2
#define QRTL_RND_FLOOR 3
#define QRTL_RND_TOWARD_ZERO 4

namespace qrtl {

// round(n / 2^s) in the given mode; s <= 0 is an exact left shift.
// W must hold n, n << -s, and s + 2 bits (the generator sizes it).
template <int MODE, int W>
ap_int<W> shift_round(const ap_int<W> &n, int s) {
#pragma HLS INLINE
    if (s <= 0) return n << (-s);
    const ap_int<W> q = n >> s;  // floor
    const bool rbit = n[s - 1];
    const ap_int<W> low = n & ((ap_int<W>(1) << (s - 1)) - 1);
    const bool sticky = low != 0;
    const bool sign = n[W - 1];
    bool inc;
    switch (MODE) {
    case QRTL_RND_HALF_EVEN: inc = rbit && (sticky || q[0]); break;
    case QRTL_RND_HALF_UP: inc = rbit; break;
    case QRTL_RND_HALF_AWAY: inc = rbit && (sticky || !sign); break;
    case QRTL_RND_TOWARD_ZERO: inc = sign && (rbit || sticky); break;
    default: inc = false; break;  // floor
    }
    return inc ? ap_int<W>(q + 1) : q;
}

// Round n / 2^s to a minifloat grid (QONNX FloatQuant rule): e = max(floor(log2|v|) - M, emin),
// q = round(v / 2^e), result in raw units of 2^emin, saturated to +-maxu (maxu has maxbl bits).
template <int MODE, int W>
ap_int<W> minifloat_round(const ap_int<W> &n, int s, int man_bits, int emin, int maxbl, const ap_int<W> &maxu) {
#pragma HLS INLINE
    if (n == 0) return 0;
    const ap_int<W> a = n < 0 ? ap_int<W>(-n) : n;
    int bl = 0;
    for (int k = 0; k < W; k++) {
        if (a[k]) bl = k + 1;
    }
    int e = bl - 1 - s - man_bits;
    if (e < emin) e = emin;
    const ap_int<W> q = shift_round<MODE, W>(n, s + e);
    if (q == 0) return 0;
    const int up = e - emin;
    if (up >= maxbl) return q > 0 ? maxu : ap_int<W>(-maxu);
    const ap_int<W> u = q << up;
    if (u > maxu) return maxu;
    if (u < -maxu) return ap_int<W>(-maxu);
    return u;
}

}  // namespace qrtl
#endif
"""


def _io_lines(tensors: list[Tensor], prefix: str) -> list[str]:
    lines = []
    for k, t in enumerate(tensors):
        lines.append(f"#define N_{prefix}{k} {t.n}")
        lines.append(f"typedef {t.ctype} {prefix.lower()}{k}_t;  // '{t.name}' {t.type.describe()} shape "
                     f"{tuple(t.shape)}{' (1 <-> +1)' if t.binary else ''}")
    return lines


def _check_reuse(net: Network, reuse: dict[str, int] | str | None) -> dict[str, int]:
    """``reuse`` as {layer: R}: option text is parsed by qat.ir.schedule.parse_reuse; a dict is checked
    the same way (known dense/conv layers, R >= 1)."""
    if reuse is None or isinstance(reuse, str):
        return parse_reuse(reuse, net)
    text = ",".join(f"{k}={v}" for k, v in reuse.items())
    return parse_reuse(text, net) if text else {}


def generate(net: Network, top: str | None = None, board=None, reuse: dict[str, int] | str | None = None,
             io: str = "parallel") -> Project:
    """Build the HLS C++ project for ``net`` (deterministic text).  ``board``: a boards.catalog.Board
    (part and clock for build.tcl); default pynq-z2.  ``reuse``: {layer: R} or ``--reuse`` text: dense /
    conv layers folded over R clocks (PIPELINE II=R, weights block-partitioned by n/R).  ``io``:
    'parallel' (arrays, one inference per call, II = the largest R) or 'stream' (hls::stream of pixels,
    line buffers, DATAFLOW)."""
    if not net.inputs or not net.outputs:
        raise HLSError(f"network '{net.name}': needs at least one input and one output")
    io = check_io(io)
    top = cname(top or net.name)
    g = _Gen(net, top, _check_reuse(net, reuse))
    g.used.add(top)
    ins = [g.tensors[i.name] for i in net.inputs]
    outs = [g.tensors[o] for o in net.outputs]
    stream = None
    if io == "stream":
        g.used.update(f"{p}{k}" for p, ts in (("in", ins), ("out", outs)) for k in range(len(ts)))
        stream = _Stream(g)
        stream.gen()
        ii = max(stream.clocks.values(), default=1)
        args = [f"hls::stream<in{k}_chunk_t> &in{k}" for k in range(len(ins))] + \
               [f"hls::stream<out{k}_chunk_t> &out{k}" for k in range(len(outs))]
        what = f"hls::stream of pixels, DATAFLOW, II {ii} clocks"
    else:
        g.gen()
        ii = max(g.reuse.values(), default=1)
        args = [f"const in{k}_t {t.var}[N_IN{k}]" for k, t in enumerate(ins)] + \
               [f"out{k}_t out{k}[N_OUT{k}]" for k in range(len(outs))]
        what = f"one inference per call, II={ii}"
    proto = f"void {top}({', '.join(args)})"
    need_w = g.max_width
    hdr = [f"// {top}: integer network '{net.name}' as Vitis HLS C++ ({what})",
           f"// generated by {GENERATOR}",
           "// Arrays are flat, C order (channels last); element types are the integer network's raw values.",
           f"#ifndef {top.upper()}_H", f"#define {top.upper()}_H"]
    if need_w > AP_INT_DEFAULT_MAX_W:
        hdr.append(f"#define AP_INT_MAX_W {max(need_w + 8, AP_INT_DEFAULT_MAX_W)}")
    hdr += ['#include "ap_int.h"']
    if stream:
        hdr += ['#include "hls_stream.h"', "",
                "// one stream read/write: N elements (a pixel's channels, or a piece of a flat tensor)",
                "#ifndef QRTL_CHUNK_DEFINED", "#define QRTL_CHUNK_DEFINED",
                "template <typename T, int N> struct qrtl_chunk { T data[N]; };", "#endif"]
    hdr += [""] + _io_lines(ins, "IN") + _io_lines(outs, "OUT")
    if stream:
        for p, ts in (("IN", ins), ("OUT", outs)):
            for k, t in enumerate(ts):
                hdr += [f"#define CH_{p}{k} {_last(t.shape)}  // elements per stream read",
                        f"typedef qrtl_chunk<{p.lower()}{k}_t, CH_{p}{k}> {p.lower()}{k}_chunk_t;"]
    hdr += ["", f"{proto};", "", "#endif", ""]
    wts = [f"// constants of {top} (generated by {GENERATOR})", f"#ifndef {top.upper()}_WEIGHTS_H",
           f"#define {top.upper()}_WEIGHTS_H", '#include "ap_int.h"', ""] + g.consts + ["", "#endif", ""]
    src = [f"// {top}: integer network '{net.name}' (generated by {GENERATOR})",
           f'#include "{top}.h"', '#include "qrtl_hls.h"', f'#include "{top}_weights.h"', ""]
    src += g.functions
    src += [f"{proto} {{"]
    if stream:
        src.append("#pragma HLS DATAFLOW")
        for k in range(len(ins)):
            src.append(f"#pragma HLS INTERFACE mode=axis port=in{k}")
        for k in range(len(outs)):
            src.append(f"#pragma HLS INTERFACE mode=axis port=out{k}")
        src += g.pragmas + stream.decls + [""] + stream.calls + ["}", ""]
    else:
        src.append(f"#pragma HLS PIPELINE II={ii}")
        for t in ins:
            src.append(f"#pragma HLS ARRAY_RESHAPE variable={t.var} complete dim=0")
            src.append(f"#pragma HLS INTERFACE mode=ap_vld port={t.var}")
        for k in range(len(outs)):
            src.append(f"#pragma HLS ARRAY_RESHAPE variable=out{k} complete dim=0")
            src.append(f"#pragma HLS INTERFACE mode=ap_vld port=out{k}")
        src += g.pragmas
        # every op result is a local, completely partitioned array
        local = []
        for op in net.ops:
            t = g.tensors[op.name]
            local.append(f"  {t.ctype} {t.var}[{t.n}];")
            local.append(f"#pragma HLS ARRAY_PARTITION variable={t.var} complete dim=0")
        src += local + [""] + g.body + [""]
        for k, t in enumerate(outs):
            src += [f"  for (int i = 0; i < {t.n}; i++) {{", f"    out{k}[i] = {t.var}[i];", "  }"]
        src += ["}", ""]
    files = {
        f"firmware/{top}.h": "\n".join(hdr),
        f"firmware/{top}.cpp": "\n".join(src),
        f"firmware/{top}_weights.h": "\n".join(wts),
        "firmware/qrtl_hls.h": HELPERS,
        "tb.cpp": _testbench(top, ins, outs, stream is not None),
    }
    part, clock = (board.part, board.clock_mhz) if board is not None else ("xc7z020clg400-1", DEFAULT_CLOCK_MHZ)
    files["build.tcl"] = _build_tcl(top, part, clock)
    files["README.md"] = _readme(top, net, part, clock, ins, outs)
    io_desc = lambda ts: [{"name": t.name, "shape": list(t.shape), "elements": t.n, "c_type": t.ctype,
                           "type": t.type.describe(), "binary": t.binary,
                           "minifloat_raw_units": isinstance(t.type, MinifloatType)} for t in ts]
    schedule = {"io": io, "reuse": dict(sorted(g.reuse.items())), "ii_clocks": ii,
                "processes": dict(sorted(stream.clocks.items())) if stream else {}}
    manifest = {"generator": GENERATOR, "top": top, "network": net.name, "part": part, "clock_mhz": clock,
                "inputs": io_desc(ins), "outputs": io_desc(outs), "ops": g.op_info, "schedule": schedule,
                "files": sorted(list(files) + ["manifest.json", "tb_data/tb_input.txt",
                                               "tb_data/tb_expected.txt"]),
                "tb_format": "one vector per line: the flat elements of every input (outputs: every output), "
                             "decimal raw integers separated by spaces; binary elements as -1/+1"}
    files["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    return Project(top, files, manifest)


def _testbench(top: str, ins: list[Tensor], outs: list[Tensor], stream: bool = False) -> str:
    lines = [
        f"// C testbench for {top} (generated by {GENERATOR})",
        "// usage: tb [INPUT.txt [OUTPUT.txt [EXPECTED.txt]]]  (defaults: tb_input.txt tb_output.txt "
        "tb_expected.txt)",
        "// One vector per line: the flat elements of every input, decimal, space separated (binary: -1/+1).",
        "// Writes one line per vector with the outputs; compares with EXPECTED when that file exists.",
        "#include <cstdio>", "#include <fstream>", "#include <iostream>", "#include <sstream>", "#include <string>",
        f'#include "{top}.h"', "",
        "template <typename T>",
        "static bool parse_elem(const std::string &tok, T &v, bool binary) {",
        "    if (binary) {",
        "        if (tok == \"1\") { v = 1; return true; }",
        "        if (tok == \"-1\") { v = 0; return true; }",
        "        return false;",
        "    }",
        "    v = T(tok.c_str(), 10);",
        "    return true;",
        "}", "",
        "template <typename T>",
        "static std::string show(const T &v, bool binary) {",
        "    if (binary) return v != 0 ? \"1\" : \"-1\";",
        "    return v.to_string(10);",
        "}", "",
        "int main(int argc, char **argv) {",
        "    const char *in_path = argc > 1 ? argv[1] : \"tb_input.txt\";",
        "    const char *out_path = argc > 2 ? argv[2] : \"tb_output.txt\";",
        "    const char *exp_path = argc > 3 ? argv[3] : \"tb_expected.txt\";",
        "    std::ifstream fin(in_path);",
        "    if (!fin) { std::fprintf(stderr, \"tb: cannot open %s\\n\", in_path); return 2; }",
        "    std::ofstream fout(out_path);",
        "    if (!fout) { std::fprintf(stderr, \"tb: cannot write %s\\n\", out_path); return 2; }",
        "    std::ifstream fexp(exp_path);",
        "    const bool check = (bool)fexp;",
        "    long n = 0, bad = 0;",
        "    std::string line, expect;",
        "    while (std::getline(fin, line)) {",
        "        if (line.find_first_not_of(\" \\t\\r\") == std::string::npos) continue;",
        "        std::istringstream ss(line);",
        "        std::string tok;",
    ]
    for k, t in enumerate(ins):
        lines += [f"        static in{k}_t in{k}[N_IN{k}];",
                  f"        for (int i = 0; i < N_IN{k}; i++) {{",
                  f"            if (!(ss >> tok) || !parse_elem(tok, in{k}[i], {str(t.binary).lower()})) {{",
                  f"                std::fprintf(stderr, \"tb: line %ld: bad or missing element %d of input {k}\\n\", "
                  f"n + 1, i);",
                  "                return 2;",
                  "            }",
                  "        }"]
    for k in range(len(outs)):
        lines.append(f"        static out{k}_t out{k}[N_OUT{k}];")
    if stream:  # one chunk (a pixel's channels) per stream write / read
        for k in range(len(ins)):
            lines += [f"        static hls::stream<in{k}_chunk_t> s_in{k};",
                      f"        for (int p = 0; p < N_IN{k} / CH_IN{k}; p++) {{",
                      f"            in{k}_chunk_t c;",
                      f"            for (int i = 0; i < CH_IN{k}; i++) c.data[i] = in{k}[p * CH_IN{k} + i];",
                      f"            s_in{k}.write(c);", "        }"]
        lines += [f"        static hls::stream<out{k}_chunk_t> s_out{k};" for k in range(len(outs))]
        call = ", ".join([f"s_in{k}" for k in range(len(ins))] + [f"s_out{k}" for k in range(len(outs))])
        lines.append(f"        {top}({call});")
        for k in range(len(outs)):
            lines += [f"        for (int p = 0; p < N_OUT{k} / CH_OUT{k}; p++) {{",
                      f"            if (s_out{k}.empty()) {{ std::fprintf(stderr, \"tb: vector %ld: output {k} has "
                      f"%d of %d reads\\n\", n, p, N_OUT{k} / CH_OUT{k}); return 2; }}",
                      f"            const out{k}_chunk_t c = s_out{k}.read();",
                      f"            for (int i = 0; i < CH_OUT{k}; i++) out{k}[p * CH_OUT{k} + i] = c.data[i];",
                      "        }"]
        for k in range(len(outs)):
            lines.append(f"        if (!s_out{k}.empty()) {{ std::fprintf(stderr, \"tb: vector %ld: output {k} has "
                         f"extra reads\\n\", n); return 2; }}")
        for k in range(len(ins)):
            lines.append(f"        if (!s_in{k}.empty()) {{ std::fprintf(stderr, \"tb: vector %ld: input {k} not "
                         f"consumed\\n\", n); return 2; }}")
    else:
        call = ", ".join([f"in{k}" for k in range(len(ins))] + [f"out{k}" for k in range(len(outs))])
        lines.append(f"        {top}({call});")
    lines.append("        std::string got;")
    for k, t in enumerate(outs):
        lines += [f"        for (int i = 0; i < N_OUT{k}; i++) {{",
                  "            if (!got.empty()) got += ' ';",
                  f"            got += show(out{k}[i], {str(t.binary).lower()});",
                  "        }"]
    lines += [
        "        fout << got << '\\n';",
        "        if (check) {",
        "            if (!std::getline(fexp, expect)) expect.clear();",
        "            while (!expect.empty() && (expect.back() == '\\r' || expect.back() == ' ')) expect.pop_back();",
        "            if (expect != got) {",
        "                if (bad < 5) std::fprintf(stderr, \"tb: vector %ld differs\\n  expected: %s\\n  got:      %s\\n\", "
        "n, expect.c_str(), got.c_str());",
        "                bad++;",
        "            }",
        "        }",
        "        n++;",
        "    }",
        "    if (check) std::printf(\"tb: %ld vectors, %ld exact, %ld mismatching\\n\", n, n - bad, bad);",
        "    else std::printf(\"tb: %ld vectors written to %s (no %s to compare)\\n\", n, out_path, exp_path);",
        "    return bad ? 1 : 0;",
        "}", ""]
    return "\n".join(lines)


def _build_tcl(top: str, part: str, clock_mhz: float) -> str:
    period = 1000.0 / clock_mhz
    return "\n".join([
        f"# Vitis HLS project for {top} (generated by {GENERATOR})",
        "# usage: vitis_hls -f build.tcl    (C-simulation, synthesis, C/RTL co-simulation, IP export)",
        "set here [file dirname [file normalize [info script]]]",
        f"open_project -reset {top}_prj",
        f"set_top {top}",
        f"add_files $here/firmware/{top}.cpp -cflags \"-std=c++14 -I$here/firmware\"",
        f"add_files $here/firmware/{top}.h",
        f"add_files $here/firmware/{top}_weights.h",
        "add_files $here/firmware/qrtl_hls.h",
        "add_files -tb $here/tb.cpp -cflags \"-std=c++14 -I$here/firmware\"",
        "add_files -tb $here/tb_data/tb_input.txt",
        "add_files -tb $here/tb_data/tb_expected.txt",
        "open_solution -reset solution1 -flow_target vivado",
        f"set_part {{{part}}}",
        f"create_clock -period {period:.3f} -name default",
        "# the testbench compares every output with the golden model's (tb_expected.txt); a mismatch fails",
        "set tb_args \"$here/tb_data/tb_input.txt tb_output.txt $here/tb_data/tb_expected.txt\"",
        "csim_design -argv $tb_args",
        "csynth_design",
        "cosim_design -argv $tb_args",
        f"export_design -format ip_catalog -vendor qrtl.org -library qrtl -description \"{top} (qrtl)\"",
        "exit",
        ""])


def _readme(top: str, net: Network, part: str, clock: float, ins: list[Tensor], outs: list[Tensor]) -> str:
    def io(ts, what):
        return "\n".join(f"* {what} {k} `{t.name}`: {t.n} x `{t.ctype}` ({t.type.describe()}, shape "
                         f"{tuple(t.shape)}{', 1 <-> +1' if t.binary else ''})" for k, t in enumerate(ts))
    return f"""# {top}: Vitis HLS project (generated by qrtl)

Integer network `{net.name}` as HLS C++: one inference per call of `{top}()`, `#pragma HLS PIPELINE II=1`,
weights as partitioned constant arrays, requantization and rounding exactly as qrtl's golden model.

{io(ins, "input")}
{io(outs, "output")}

Arrays are flat in C order (channels last). Minifloat tensors (if any) carry raw units (multiples of the
smallest subnormal), not the sign/exponent/mantissa encoding.

## C-simulation with g++ (no AMD tools)

```sh
g++ -std=c++14 -O1 -I<hls4ml>/templates/vivado/ap_types -Ifirmware tb.cpp firmware/{top}.cpp -o tb
./tb tb_data/tb_input.txt tb_output.txt tb_data/tb_expected.txt
```
`qrtl hls NET -o DIR --csim` does this and compares every output with the golden model.

## Vitis HLS

```sh
vitis_hls -f build.tcl
```
runs C-simulation, synthesis for `{part}` at {clock:g} MHz, C/RTL co-simulation and exports the IP
(`{top}_prj/solution1/impl/ip`).
"""
