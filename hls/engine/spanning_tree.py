"""Depth-bounded minimum spanning trees over a layer's output columns.

A layer's outputs (columns of its weight matrix) are the vertices of a complete graph;
``dist[u, v]`` is the cost of computing output v from an already computed output u (for
binary layers the Hamming distance of their weight columns, for constant matrices the
number of signed digits of their difference).  A virtual root stands for "computed from
scratch" at ``root_cost[v]``.  Each tree level adds a step of latency, so the tree's depth
(levels below the root) is bounded.

The exact depth-bounded MST is NP-hard; :func:`spanning_tree` is Prim's algorithm from the
root that only attaches to vertices above the bound, breaking ties towards the shallower
parent and then the lower index, so the result is deterministic.  Without a bound it is an
exact minimum spanning tree (Prim).  Used by the MST-reordered binary layers (MST-compression)
and by the constant-matrix engine (da4ml's stage 1) alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tree:
    """A spanning tree over n vertices below a virtual root.

    ``parent[v]``: the vertex v is computed from, -1 for the root (computed from scratch);
    ``flip[v]``: v is computed from the *negation* of its parent; ``depth[v]``: 1 for children
    of the root; ``cost[v]``: the cost of v's edge; ``order``: vertices parents-first."""

    parent: np.ndarray
    flip: np.ndarray
    depth: np.ndarray
    cost: np.ndarray
    order: tuple[int, ...]

    @property
    def total(self) -> int:
        return int(self.cost.sum())

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if self.depth.size else 0

    def children(self, v: int) -> list[int]:
        return [int(c) for c in self.order if self.parent[c] == v]


def spanning_tree(dist: np.ndarray, root_cost: np.ndarray, max_depth: int | None = None,
                  flip: np.ndarray | None = None) -> Tree:
    """A spanning tree of minimum total cost (exact without ``max_depth``, greedy with it).

    ``dist`` (n, n): cost of v from u (need not be symmetric; the diagonal is ignored);
    ``root_cost`` (n,): cost of v from scratch; ``flip`` (n, n) bool: the ``dist[u, v]``
    path goes through u's negation; ``max_depth``: levels allowed below the root (>= 1)."""
    dist = np.asarray(dist, dtype=np.int64)
    n = dist.shape[0]
    if dist.shape != (n, n) or np.shape(root_cost) != (n,):
        raise ValueError(f"dist must be (n, n) and root_cost (n,), got {dist.shape} and {np.shape(root_cost)}")
    if max_depth is not None and max_depth < 1:
        raise ValueError(f"the depth bound must be at least 1, got {max_depth}")
    flip = np.zeros((n, n), dtype=bool) if flip is None else np.asarray(flip, dtype=bool)
    best = np.asarray(root_cost, dtype=np.int64).copy()
    via = np.full(n, -1, dtype=np.int64)
    via_depth = np.zeros(n, dtype=np.int64)  # depth of the candidate parent (root: 0)
    depth = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    order: list[int] = []
    for _ in range(n):
        # cheapest waiting vertex; ties: shallower parent, then lower index
        key = np.where(done, np.iinfo(np.int64).max, best * (n + 2) + via_depth)
        v = int(np.argmin(key))
        done[v] = True
        depth[v] = via_depth[v] + 1
        order.append(v)
        if max_depth is not None and depth[v] >= max_depth:
            continue
        cand = dist[v]
        better = ~done & ((cand < best) | ((cand == best) & (depth[v] < via_depth)))
        best = np.where(better, cand, best)
        via = np.where(better, v, via)
        via_depth = np.where(better, depth[v], via_depth)
    f = np.array([bool(flip[via[v], v]) if via[v] >= 0 else False for v in range(n)], dtype=bool)
    return Tree(via, f, depth, best, tuple(order))


def hamming(bits: np.ndarray, allow_flip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(dist, flip) between the columns of a 0/1 matrix ``bits`` (N, C): the number of
    differing positions, or (``allow_flip``) of positions that differ from the negated
    column when that is fewer (flip True)."""
    b = np.asarray(bits, dtype=np.int64)
    same = b.T @ b + (1 - b).T @ (1 - b)
    d = b.shape[0] - same
    if not allow_flip:
        return d, np.zeros_like(d, dtype=bool)
    flip = same < d
    return np.minimum(d, same), flip
