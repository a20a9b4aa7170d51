"""The spanning-tree module shared by the MST-reordered binary layers and the constant-matrix engine."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree

from hls.engine.spanning_tree import hamming, spanning_tree


def _exact_mst_total(dist: np.ndarray, root: np.ndarray) -> int:
    n = len(root)
    full = np.zeros((n + 1, n + 1))
    full[0, 1:] = full[1:, 0] = root
    full[1:, 1:] = np.minimum(dist, dist.T)
    # scipy drops zero-weight edges: shift every weight by one and take the shift back out
    return int(round(minimum_spanning_tree(np.triu(full + 1, 1)).sum())) - n


def test_unbounded_tree_is_a_minimum_spanning_tree():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, N = int(rng.integers(1, 10)), int(rng.integers(1, 24))
        bits = rng.integers(0, 2, size=(N, n))
        d, f = hamming(bits)
        tree = spanning_tree(d, np.full(n, N), None, f)
        assert tree.total == _exact_mst_total(d, np.full(n, N))
        assert sorted(tree.order) == list(range(n))
        for v in tree.order:  # parents first, depth one more than the parent's
            p = tree.parent[v]
            assert p == -1 or (tree.order.index(p) < tree.order.index(v) and tree.depth[v] == tree.depth[p] + 1)


def test_depth_bound_is_respected_and_costs_more_or_equal():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, size=(64, 40))
    bits[:, 20:] = bits[:, :20] ^ (rng.random((64, 20)) < 0.05)  # near copies: a chain forms
    d, f = hamming(bits)
    free = spanning_tree(d, np.full(40, 64), None, f)
    prev = None
    for bound in (1, 2, 3, 5):
        t = spanning_tree(d, np.full(40, 64), bound, f)
        assert t.max_depth <= bound and t.total >= free.total
        if prev is not None:
            assert t.total <= prev  # a looser bound never costs more here
        prev = t.total
    assert spanning_tree(d, np.full(40, 64), 1, f).total == 40 * 64  # depth 1: every column from scratch


def test_negated_columns_are_cheap():
    w = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1]])  # column 1 = NOT column 0
    d, f = hamming(w)
    assert d[0, 1] == 0 and f[0, 1]
    t = spanning_tree(d, np.full(3, 4), None, f)
    assert t.parent[1] == 0 and t.flip[1] and t.cost[1] == 0


def test_deterministic_and_validated():
    rng = np.random.default_rng(2)
    d, f = hamming(rng.integers(0, 2, size=(16, 12)))
    a, b = spanning_tree(d, np.full(12, 16), 2, f), spanning_tree(d, np.full(12, 16), 2, f)
    assert np.array_equal(a.parent, b.parent) and a.order == b.order
    with pytest.raises(ValueError, match="at least 1"):
        spanning_tree(d, np.full(12, 16), 0, f)
    with pytest.raises(ValueError, match=r"\(n, n\)"):
        spanning_tree(d[:3], np.full(12, 16))
