"""Per-layer width allocation as an integer linear program (HiGHS through ``scipy.optimize.milp``).

Variables x[i, k] in {0, 1}: layer i takes candidate width k; exactly one per layer.
Two problems, as in HAWQ-V3 but priced in LUTs:

* ``budget_luts``: minimise sum sensitivity[i, k] x[i, k] subject to fixed_luts + sum luts[i, k] x[i, k] <= B;
* ``max_loss``: minimise sum luts[i, k] x[i, k] subject to sum sensitivity[i, k] x[i, k] <= X.

An infeasible budget raises :class:`SearchError` with one line giving the smallest feasible budget.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qat.search.errors import SearchError


@dataclass(frozen=True)
class Allocation:
    """The chosen width index per layer and the predicted totals."""

    choice: tuple[int, ...]  # index into the candidate widths, per layer
    luts: float  # predicted LUTs, fixed part included
    sensitivity: float  # summed sensitivity of the choice


def _solve(cost: np.ndarray, limit_row: np.ndarray, limit: float, allowed: np.ndarray) -> np.ndarray | None:
    from scipy.optimize import Bounds, LinearConstraint, milp

    n_layers, n_w = cost.shape
    n = n_layers * n_w
    one_each = np.zeros((n_layers, n))
    for i in range(n_layers):
        one_each[i, i * n_w:(i + 1) * n_w] = 1.0
    cons = [LinearConstraint(one_each, 1.0, 1.0),
            LinearConstraint(limit_row.reshape(1, -1), -np.inf, limit)]
    res = milp(cost.reshape(-1), constraints=cons, integrality=np.ones(n),
               bounds=Bounds(0, allowed.reshape(-1).astype(float)),
               options={"presolve": True})
    if res.status != 0 or res.x is None:
        return None
    return np.round(res.x).reshape(n_layers, n_w)


def allocate(sensitivity: np.ndarray, luts: np.ndarray, fixed_luts: float = 0.0, *,
             budget_luts: float | None = None, max_loss: float | None = None,
             allowed: np.ndarray | None = None) -> Allocation:
    """Solve one of the two problems (exactly one of ``budget_luts`` / ``max_loss``).

    ``sensitivity`` and ``luts`` are (layers, widths) arrays; ``fixed_luts`` prices what no
    choice changes; ``allowed`` (same shape, bool) excludes candidates that cannot be built
    (their table entries are then ignored).
    """
    s = np.asarray(sensitivity, dtype=np.float64)
    c = np.asarray(luts, dtype=np.float64)
    ok = np.ones(s.shape, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    if s.shape != c.shape or s.ndim != 2 or 0 in s.shape:
        raise SearchError(f"sensitivity {s.shape} and LUT {c.shape} tables must be the same non-empty "
                          f"(layers, widths) shape")
    if (budget_luts is None) == (max_loss is None):
        raise SearchError("give exactly one of --budget-luts and --max-loss")
    if ok.shape != s.shape or not ok.any(axis=1).all():
        raise SearchError("every layer needs at least one buildable candidate width")
    s, c = np.where(ok, s, 0.0), np.where(ok, c, 0.0)
    if not (np.isfinite(s).all() and np.isfinite(c).all()):
        raise SearchError("sensitivity and LUT tables must be finite")
    if budget_luts is not None:
        least = float(fixed_luts + np.where(ok, c, np.inf).min(axis=1).sum())
        x = _solve(s, c.reshape(-1), budget_luts - fixed_luts, ok) if budget_luts >= least - 1e-9 else None
        if x is None:
            raise SearchError(f"--budget-luts {budget_luts:g} is infeasible: the smallest feasible budget is "
                              f"{int(np.ceil(least - 1e-9))} LUTs (every layer at its cheapest width)")
    else:
        least = float(np.where(ok, s, np.inf).min(axis=1).sum())
        x = _solve(c, s.reshape(-1), max_loss, ok) if max_loss >= least - 1e-12 else None
        if x is None:
            raise SearchError(f"--max-loss {max_loss:g} is infeasible: the smallest feasible budget is "
                              f"{least:.6g} (every layer at its least sensitive width)")
    choice = tuple(int(np.argmax(row)) for row in x)
    rows = np.arange(len(choice))
    return Allocation(choice, float(fixed_luts + c[rows, choice].sum()), float(s[rows, choice].sum()))
