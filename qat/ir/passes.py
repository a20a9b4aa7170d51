"""IR passes: rewrites of a validated integer network that keep every output bit-identical.

Run after every importer (:func:`run_passes`), so each front end only translates its
framework's layers and every network gets the same optimisations.

* :func:`fuse_binary_thresholds`: a binary layer (``bdense``/``bconv2d``) read only by a
  one-level ``threshold`` with a binary output (BatchNorm + sign) becomes the binary layer
  with fused per-channel ``threshold``/``direction`` arrays: one integer compare of the
  popcount per channel instead of a full-width sum and a separate compare.
"""
from __future__ import annotations

import numpy as np

from .intervals import validate
from .network import Network, Op
from .types import BinaryType


def _consumers(net: Network) -> dict[str, list[Op]]:
    out: dict[str, list[Op]] = {}
    for op in net.ops:
        for i in op.inputs:
            out.setdefault(i, []).append(op)
    return out


def _fusable(src: Op, thr: Op, readers: list[Op], net: Network) -> bool:
    return (src.kind in ("bdense", "bconv2d") and "threshold" not in src.arrays
            and thr.kind == "threshold" and thr.inputs == [src.name] and isinstance(thr.type, BinaryType)
            and thr.arrays["thresholds"].shape[1] == 1 and len(readers) == 1 and src.name not in net.outputs)


def _fold(src: Op, thr: Op) -> None:
    """Give ``src`` the compare of ``thr`` (y = +1 when the popcount sum passes it, else -1)."""
    t = thr.arrays["thresholds"][:, 0]
    d = thr.arrays["direction"]
    base = thr.arrays["base"]
    n = int(np.prod(src.arrays["weight"].shape[:-1]))
    # +1 iff: base=-1,dir=+1: y >= t ; base=+1,dir=-1: y < t, i.e. y <= t-1 ; constant outputs
    cut = np.where(d > 0, t, t - 1)
    dirn = d.copy()
    const_pos = (base == 1) & (d > 0)
    const_neg = (base == -1) & (d < 0)
    cut = np.where(const_pos, -n - 1, np.where(const_neg, n + 1, cut))
    dirn = np.where(const_pos | const_neg, 1, dirn)
    src.arrays["threshold"] = cut.astype(np.int64)
    src.arrays["direction"] = dirn.astype(np.int64)
    src.type = thr.type
    src.source += f", {thr.source}"
    src.attrs.pop("acc_bits", None)


def fuse_binary_thresholds(net: Network) -> Network:
    """``net`` with every fusable binary layer + sign threshold pair merged (the binary
    layer keeps its name; readers of the threshold read it)."""
    readers = _consumers(net)
    fused: dict[str, str] = {}  # threshold name -> binary layer name
    by_name = {op.name: op for op in net.ops}
    for op in net.ops:
        src = by_name.get(op.inputs[0]) if op.inputs else None
        if src is not None and _fusable(src, op, readers.get(src.name, []), net):
            _fold(src, op)
            fused[op.name] = src.name
    if not fused:
        return net
    ops = []
    for op in net.ops:
        if op.name in fused:
            continue
        op.inputs = [fused.get(i, i) for i in op.inputs]
        ops.append(op)
    out = Network(net.name, net.inputs, ops, [fused.get(o, o) for o in net.outputs], net.notes, net.meta)
    validate(out)
    return out


PASSES = (fuse_binary_thresholds,)


def run_passes(net: Network) -> Network:
    """Every IR pass, in order (the network is revalidated by each pass that changes it)."""
    for p in PASSES:
        net = p(net)
    return net
