"""Op specifications: the one place that says what an op kind means.

Each op kind of the integer network has one :class:`OpSpec`, defined in its
family module under :mod:`qat.ir.ops` and registered here.  A spec holds the
op's meaning (one line), its inputs, required and optional arrays,
attributes with their defaults, its golden (exact) execution, its exact
interval bounds, its static checks, its sliding-window geometry (when it has
one) and the few facts generators need (pure wiring, minifloat outputs,
reconfigurable parameters).  Backends register one emitter per op kind
(:class:`EmitterRegistry`); a test fails when a kind lacks one.

Adding an op kind means: one spec (a module in ``qat/ir/ops``) and one
emitter per backend (``hls/rtl`` and ``hls/cpp``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# The callables' argument types (qat.ir.network.Op, numpy arrays, qat.ir.bounds.Bounds,
# qat.ir.types.TensorType, qat.ir.geometry.Window) are named as strings: this module imports
# none of them, so every IR module can import it.


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # an attribute without a default

GoldenFn = Callable[["Op", "list[np.ndarray]", "list[TensorType]"], "np.ndarray"]
BoundsFn = Callable[["Op", "list[Bounds]", "list[TensorType]"], "Bounds"]
CheckFn = Callable[["Op", "list[TensorType]", "list[tuple[int, ...]]"], None]
ZeroFn = Callable[["Op", "Bounds", "list[Bounds]", "list[TensorType]"], bool]
GeometryFn = Callable[["Op", "tuple[int, ...]"], "Window"]


@dataclass(frozen=True)
class OpSpec:
    """Everything the IR knows about one op kind.

    ``n_inputs``: the exact number of inputs, or ``None`` for two or more.
    ``attrs``: attribute name -> default (:data:`REQUIRED` when it has none; a callable
    default is computed from the op, e.g. the output type's range).
    ``golden(op, xs, types)``: exact batch-first result (int64 or Python-int arrays).
    ``bounds(op, ins, types)``: exact element-wise bounds of the result.
    ``check(op, in_types, in_shapes)``: raise NetworkError on a malformed op (arrays and
    inputs are checked generically before).
    ``can_be_zero(op, bounds, in_bounds, in_types)``: whether the result can be 0 (a binary
    output cannot hold it); default: the bounds span 0.
    ``geometry(op, in_shape)``: the op's sliding window (convolutions, pools).
    ``wiring``: pure wiring, no logic (no pipeline register of its own).
    ``minifloat_out``: can produce minifloat codes exactly.
    ``params``: weight/bias arrays that may live in reconfigurable registers.
    ``linear``: a constant-weight multiply-accumulate (dense or convolution).
    ``sums``: the result is a sum of products or terms (a float32 framework computes it
    exactly only while it fits 24 significant bits).
    """

    kind: str
    meaning: str
    golden: GoldenFn
    bounds: BoundsFn
    n_inputs: int | None = 1
    arrays: tuple[str, ...] = ()
    optional_arrays: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    check: CheckFn | None = None
    can_be_zero: ZeroFn | None = None
    geometry: GeometryFn | None = None
    wiring: bool = False
    minifloat_out: bool = False
    params: bool = False
    linear: bool = False
    sums: bool = False


SPECS: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    """Add ``spec`` to the registry (a kind is registered once)."""
    if spec.kind in SPECS and SPECS[spec.kind] is not spec:
        raise ValueError(f"op kind {spec.kind!r} is already registered")
    SPECS[spec.kind] = spec
    return spec


def unregister(kind: str) -> None:
    """Remove a kind (for tests that add a temporary op kind)."""
    SPECS.pop(kind, None)


def op_kinds() -> tuple[str, ...]:
    """Every registered op kind, in registration order (the built-in ones are registered
    when ``qat.ir`` is imported)."""
    return tuple(SPECS)


def spec_of(kind: str) -> OpSpec | None:
    """The spec of ``kind``, or None when no such kind is registered."""
    return SPECS.get(kind)


def attr(op: "Op", name: str) -> Any:
    """``op.attrs[name]``, or the default its spec declares."""
    if name in op.attrs:
        return op.attrs[name]
    spec = spec_of(op.kind)
    if spec is None or name not in spec.attrs:
        raise KeyError(f"{op.where()}: no attribute {name!r}")
    default = spec.attrs[name]
    if default is REQUIRED:
        raise KeyError(f"{op.where()}: missing attribute {name!r}")
    return default(op) if callable(default) else default


class EmitterRegistry:
    """One emitter per op kind for one backend (Verilog, HLS C++, ...), plus optional
    hardware variants of the same op (e.g. ``"mst"`` for a reordered binary layer, a folded
    or streamed schedule): a variant computes the same integers on another structure.

    ``@REG.register("conv1d", "conv2d")`` on a function (or method) records the default
    emitter; ``@REG.register("bdense", variant="mst")`` a variant.  ``REG.get(kind)`` returns
    the default (or None), ``REG.get(kind, variant)`` a variant; ``REG.missing()`` lists
    the registered op kinds that have no default emitter.
    """

    DEFAULT = "default"

    def __init__(self, backend: str):
        self.backend = backend
        self.emitters: dict[tuple[str, str], Callable] = {}

    def register(self, *kinds: str, variant: str = DEFAULT) -> Callable[[Callable], Callable]:
        def deco(fn: Callable) -> Callable:
            for k in kinds:
                self.emitters[(k, variant)] = fn
            return fn
        return deco

    def get(self, kind: str, variant: str = DEFAULT) -> Callable | None:
        return self.emitters.get((kind, variant))

    def variants(self, kind: str) -> list[str]:
        """The variant names registered for ``kind`` (the default first)."""
        return sorted((v for k, v in self.emitters if k == kind), key=lambda v: (v != self.DEFAULT, v))

    def unregister(self, kind: str, variant: str | None = None) -> None:
        """Remove ``kind``'s emitters (one variant, or all of them)."""
        for key in [k for k in self.emitters if k[0] == kind and (variant is None or k[1] == variant)]:
            del self.emitters[key]

    def missing(self) -> list[str]:
        return [k for k in op_kinds() if (k, self.DEFAULT) not in self.emitters]
