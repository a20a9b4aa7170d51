"""The framework side of a model handed to search jobs: a picklable reference and its loader.

A :class:`ModelRef` carries the model as bytes (QKeras: the ``.h5`` file; Brevitas: the
``file.py`` source, the NAME and a state_dict), so a Ray task on another machine rebuilds the
same model; each worker process keeps the models it loaded (by content key).
"""
from __future__ import annotations

from types import ModuleType

from qat.search.errors import SearchError
from qat.search.model_ref import ModelRef


def module(framework: str) -> ModuleType:
    """The adapter module of a framework (qat.search.qkeras_model / brevitas_model)."""
    if framework == "qkeras":
        from qat.search import qkeras_model

        return qkeras_model
    if framework == "brevitas":
        from qat.search import brevitas_model

        return brevitas_model
    raise SearchError(f"unknown framework {framework!r}")


_LOADED: dict[str, object] = {}


def materialize(ref: ModelRef):
    """The framework model of ``ref`` (a fresh copy each call: jobs may change it)."""
    fw = module(ref.framework)
    fw.deterministic()
    if ref.key not in _LOADED:
        _LOADED[ref.key] = fw.from_ref(ref)
    return fw.copy(_LOADED[ref.key])


def ref_of(path: str, input_shape: tuple[int, ...] | None = None) -> ModelRef:
    """A reference to the model at ``path``: a QKeras ``.h5`` or a Brevitas ``file.py:NAME``."""
    from pathlib import Path

    if ".py:" in path:
        from qat.search import brevitas_model

        return brevitas_model.ref_of(path, input_shape)
    p = Path(path)
    if p.suffix.lower() != ".h5":
        raise SearchError(f"{path}: MODEL must be a QKeras .h5 or a Brevitas file.py:NAME")
    if not p.is_file():
        raise SearchError(f"{path}: no such model file")
    from qat.search import qkeras_model

    qkeras_model.load(str(p))  # safe loader: refuses an unreadable or unsafe file in one line here
    return ModelRef("qkeras", p.read_bytes())
