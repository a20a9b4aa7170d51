"""Integer thresholds for a monotonic float function of an integer accumulator.

A framework layer chain such as BatchNorm -> ReLU -> quantizer maps each
integer accumulator value of a channel to an output level, in the
framework's own float arithmetic.  When that map is monotonic per channel,
a ``threshold`` op (y = base + direction*step*count(x >= T[c, :])) computes
it exactly: :func:`fit_thresholds` finds T by bisection on the function
itself and :func:`check_thresholds` verifies the op against the function on
every accumulator value (or a dense sample of large ranges).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from qat.ir.ops.tables import golden_threshold
from qat.ir.network import Op
from qat.ir.types import TensorType

LevelFn = Callable[[np.ndarray], np.ndarray]  # (K, C) int64 accumulators -> (K, C) int64 output levels


def fit_thresholds(f: LevelFn, lo: np.ndarray, hi: np.ndarray, levels: int, step: int = 1
                   ) -> dict[str, np.ndarray]:
    """Arrays of a threshold op for ``f`` over accumulators [lo[c], hi[c]].

    ``levels`` = number of output steps (out_hi - out_lo) // step.  Returns
    ``thresholds`` (C, levels) with hi+1 where a level is never reached,
    ``base`` (C,) = f(lo) and ``direction`` (C,) = +1 or -1."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    c = lo.size
    f_lo, f_hi = f(lo[None])[0], f(hi[None])[0]
    direction = np.where(f_hi >= f_lo, 1, -1).astype(np.int64)
    targets = f_lo[None, :] + direction[None, :] * step * np.arange(1, levels + 1)[:, None]  # (K, C)
    a = np.broadcast_to(lo, (levels, c)).copy()
    b = np.broadcast_to(hi + 1, (levels, c)).copy()
    while np.any(a < b):
        mid = (a + b) // 2
        fm = f(np.minimum(mid, hi[None, :]))
        reached = np.where(direction[None, :] > 0, fm >= targets, fm <= targets) & (mid <= hi[None, :])
        b = np.where(reached, mid, b)
        a = np.where(reached, a, mid + 1)
    return {"thresholds": a.T.copy(), "base": f_lo.astype(np.int64), "direction": direction}


def check_thresholds(op: Op, f: LevelFn, lo: np.ndarray, hi: np.ndarray, in_type: TensorType,
                     exhaustive_span: int = 1 << 14) -> bool:
    """True when the threshold op equals ``f`` on every accumulator value in [lo, hi]
    (ranges wider than ``exhaustive_span``: both sides of every threshold plus 4096 random values)."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    span = int((hi - lo).max()) + 1
    if span <= exhaustive_span:
        acc = lo[None, :] + np.arange(span)[:, None]
    else:
        t = op.arrays["thresholds"].T
        acc = np.concatenate([t - 1, t, np.random.default_rng(0).integers(lo, hi + 1, size=(4096, lo.size))])
    acc = np.minimum(np.maximum(acc, lo[None, :]), hi[None, :])
    return bool(np.array_equal(np.asarray(golden_threshold(op, [acc], [in_type]), dtype=np.int64), f(acc)))
