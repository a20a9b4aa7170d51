"""The search's one error type: a ValueError, so ``qrtl`` prints it as one line and exits 1."""
from __future__ import annotations


class SearchError(ValueError):
    """Bad search input: infeasible budget, unreachable Ray address, a layer the recipes cannot re-quantize."""
