"""A model's own metric for the search (``--metric file.py:NAME``), e.g. the EMD of an autoencoder.

``NAME(predict, data) -> float``, higher is better: ``predict(x)`` runs the model under evaluation
(numpy in, numpy out: the outputs the integer network reproduces, i.e. logits before a final
softmax, or the regression outputs), ``data`` holds every array of DATA.npz (``x_train``,
``y_train``, ``x_test``, ``y_test`` and any others, e.g. constants the metric needs: they count in
the cache keys like the data).  So a metric may fit something on the training set (an
autoencoder's off-detector decoder) and score the test set.  A :class:`MetricRef` carries the
file's text, so a Ray task on another machine rebuilds the same function.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from qat.search.cache import content_key
from qat.search.errors import SearchError


@dataclass(frozen=True)
class MetricRef:
    source: str  # the Python file's text
    name: str  # NAME in file.py:NAME
    path: str  # where it was read (messages only)

    @property
    def key(self) -> str:
        return content_key("metric", self.source, self.name)


def metric_ref(spec: str) -> MetricRef:
    """The metric ``file.py:NAME``; a missing file, a syntax error or a missing or non-callable NAME is
    one line naming it."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        raise SearchError(f"--metric must be file.py:NAME (a function of predict, data), got {spec!r}")
    p = Path(path)
    if not p.is_file():
        raise SearchError(f"{path}: no such metric file")
    ref = MetricRef(p.read_text(), name, str(p))
    load(ref)  # fail here, in one line, rather than in a job
    return ref


_LOADED: dict[str, Callable[..., Any]] = {}


def load(ref: MetricRef) -> Callable[..., Any]:
    """The metric function of ``ref`` (the file executed once per process)."""
    if ref.key not in _LOADED:
        ns: dict[str, Any] = {"__name__": f"qrtl_metric_{ref.key[:12]}", "__file__": ref.path}
        try:
            exec(compile(ref.source, ref.path, "exec"), ns)  # noqa: S102  (the user's own file, as a Brevitas model)
        except Exception as exc:  # noqa: BLE001
            raise SearchError(f"{ref.path}: cannot load the metric file ({type(exc).__name__}: {exc})") from None
        fn = ns.get(ref.name)
        if not callable(fn):
            raise SearchError(f"{ref.path}: no function {ref.name!r} (--metric {ref.path}:{ref.name})")
        _LOADED[ref.key] = fn
    return _LOADED[ref.key]


def score(ref: MetricRef, predict: Callable[[np.ndarray], np.ndarray], data: dict[str, np.ndarray]) -> float:
    """``NAME(predict, data)`` as a float; a non-finite value is an error naming the metric."""
    v = float(load(ref)(predict, data))
    if not np.isfinite(v):
        raise SearchError(f"{ref.path}:{ref.name} returned {v} (the metric must be a finite number)")
    return v
