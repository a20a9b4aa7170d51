"""Loading model files without running code stored in them.

Keras (``.h5``, ``.keras``, JSON architecture): the model configuration is read as plain
data (h5py attribute ``model_config``, the ``config.json`` of a ``.keras`` zip, or the JSON
text) and walked *before* Keras deserializes anything.  Every object in it (layers, nested
``Functional``/``Sequential`` models, initializers, constraints, quantizers, ...) must be a
Keras built-in or a QKeras / qrtl-recipe class; ``Lambda`` layers (their Python bytecode
is stored in the file and run by ``Lambda.from_config``/``call``; Keras 2's ``.h5`` loader
does so even with ``safe_mode=True``) and anything else are refused with one line naming
the layer and its class.  A ``module`` key naming a module outside Keras/TensorFlow/QKeras/
qat is refused too (Keras imports it), and QKeras quantizer strings must name a QKeras
quantizer or a Keras activation.

ONNX: every tensor with external data (initializers, attribute tensors, subgraphs) must
point to a relative path inside the model's folder (no absolute paths, no ``..`` escapes,
no symlink leaving the folder) before any external data is read.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

REFUSED_CLASSES = {"Lambda": "a Lambda layer runs Python code stored in the model file",
                   "TFOpLambda": "a TFOpLambda layer calls TensorFlow functions named in the model file",
                   "SlicingOpLambda": "a SlicingOpLambda layer calls TensorFlow functions named in the model file",
                   "__lambda__": "a serialized Python lambda runs code stored in the model file"}
ALLOWED_MODULE_PREFIXES = ("keras", "tf_keras", "tensorflow", "qkeras", "qat", "builtins")
MODEL_CLASSES = ("Functional", "Sequential", "Model")
# plain-data wrappers of Keras' new serialization format (no code)
DATA_CLASSES = ("__tuple__", "__numpy__", "__bytes__", "__tensor__", "__typespec__", "TensorShape", "Policy",
                "DTypePolicy", "InputSpec")


class UnsafeModelError(ValueError):
    """A model file that would run code (or reach outside its folder) when loaded."""


# ---- Keras ---------------------------------------------------------------------------

_ALLOWED: set[str] | None = None
_KERAS_ACTIVATIONS: set[str] | None = None


def _allowed_names() -> tuple[set[str], set[str]]:
    """(object class names Keras may deserialize, activation/quantizer function names)."""
    global _ALLOWED, _KERAS_ACTIVATIONS
    if _ALLOWED is None:
        import inspect

        import tensorflow as tf
        from qkeras.utils import _add_supported_quantized_objects

        from qat.recipes.qkeras_dyadic import CUSTOM_OBJECTS_OWN

        names: set[str] = set(MODEL_CLASSES) | set(DATA_CLASSES)
        for mod in (tf.keras.layers, tf.keras.initializers, tf.keras.regularizers, tf.keras.constraints,
                    tf.keras.mixed_precision, tf.keras.layers.experimental.preprocessing):
            names.update(n for n, v in vars(mod).items() if inspect.isclass(v))
        acts = {n for n, v in vars(tf.keras.activations).items() if callable(v) and not n.startswith("_")}
        qk: dict = {}
        _add_supported_quantized_objects(qk)
        qk.update(CUSTOM_OBJECTS_OWN)
        names.update(qk)
        names.difference_update(REFUSED_CLASSES)
        _ALLOWED, _KERAS_ACTIVATIONS = names, acts | set(qk)
    return _ALLOWED, _KERAS_ACTIVATIONS


def read_keras_config(path: Path) -> dict:
    """The model configuration of a Keras file, as plain JSON data (nothing deserialized)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = path.read_text(errors="replace")
        what = "readable Keras JSON architecture"
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                text = z.read("config.json").decode("utf-8", "replace")
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise UnsafeModelError(f"{path}: not a Keras .keras archive with a config.json ({exc})") from None
        what = "readable Keras .keras archive configuration"
    else:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
        except OSError as exc:
            raise UnsafeModelError(f"{path}: not a readable Keras model ({' '.join(str(exc).split())[:120]})") \
                from None
        if raw is None:
            raise UnsafeModelError(f"{path}: holds no model configuration (a weights-only file? pass the JSON "
                                   f"architecture as the model and this file as --weights)")
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        what = "readable Keras model configuration"
    try:
        cfg = json.loads(text)
    except ValueError as exc:
        raise UnsafeModelError(f"{path}: not a {what} (invalid JSON: {exc})") from None
    if not isinstance(cfg, dict):
        raise UnsafeModelError(f"{path}: not a {what} (no model configuration object)")
    return cfg


def _objects(node: Any, where: list[str]) -> Iterator[tuple[dict, list[str], str | None]]:
    """Every dict with a ``class_name`` (an object Keras deserializes), with the enclosing layer path
    and the config key it sits under."""
    stack: list[tuple[Any, list[str], str | None]] = [(node, where, None)]
    while stack:
        n, path, key = stack.pop()
        if isinstance(n, dict):
            if "class_name" in n:
                cfg = n.get("config")
                name = n.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None)
                is_layer = key in (None, "layers", "layer", "forward_layer", "backward_layer", "cell", "cells")
                if is_layer and name is not None:
                    path = path + [str(name)]
                yield n, path, key
            for k, v in n.items():
                if isinstance(v, (dict, list)):
                    stack.append((v, path, k))
                elif isinstance(v, str) and (k.endswith("quantizer") or k in ("activation", "quantizer")):
                    yield {"__quantizer_string__": v}, path, k
        elif isinstance(n, list):
            for v in reversed(n):
                if isinstance(v, (dict, list)):
                    stack.append((v, path, key))


def check_keras_config(cfg: dict, path: Path) -> None:
    """Refuse (UnsafeModelError, one line) anything in a Keras configuration that is not plain data
    for a Keras built-in or a QKeras / qrtl-recipe class."""
    allowed, functions = _allowed_names()

    def where(p: list[str], cls: str) -> str:
        return f"{path}: layer '{'/'.join(p) if p else '?'}' ({cls})"

    for obj, p, key in _objects(cfg, []):
        if "__quantizer_string__" in obj:
            s = obj["__quantizer_string__"].strip()
            head = s.split("(", 1)[0].strip()
            if head and head not in functions:
                raise UnsafeModelError(f"{where(p, 'quantizer string')}: {key} '{s[:60]}' names no QKeras "
                                       f"quantizer or Keras activation; refused before loading")
            continue
        cls = obj.get("class_name")
        if not isinstance(cls, str):
            raise UnsafeModelError(f"{where(p, '?')}: class_name {cls!r} is not a name; refused before loading")
        if cls in REFUSED_CLASSES:
            raise UnsafeModelError(f"{where(p, cls)}: {REFUSED_CLASSES[cls]}; refused before anything was "
                                   f"loaded (rebuild the model without it)")
        if cls not in allowed:
            raise UnsafeModelError(f"{where(p, cls)}: unknown custom object '{cls}' (not a Keras built-in or a "
                                   f"QKeras / qrtl-recipe class); refused before anything was loaded")
        module = obj.get("module")
        if module is not None and (not isinstance(module, str) or
                                   module.split(".")[0] not in ALLOWED_MODULE_PREFIXES):
            raise UnsafeModelError(f"{where(p, cls)}: module '{module}' is outside Keras/TensorFlow/QKeras/qat; "
                                   f"refused before anything was loaded")
        reg = obj.get("registered_name")
        if reg is not None and reg != cls and reg not in allowed:
            raise UnsafeModelError(f"{where(p, cls)}: registered name '{reg}' is not a known class; refused "
                                   f"before anything was loaded")


def check_keras_file(path: str | Path) -> dict:
    """Read and check a Keras model file's configuration; returns it."""
    path = Path(path)
    cfg = read_keras_config(path)
    check_keras_config(cfg, path)
    return cfg


# ---- ONNX ----------------------------------------------------------------------------

def _external_tensors(model) -> Iterator[tuple[Any, str]]:
    """(TensorProto, where) for every tensor stored as external data, including subgraphs."""
    from onnx import TensorProto

    def graph_tensors(g, prefix: str):
        for t in g.initializer:
            yield t, f"{prefix}initializer '{t.name}'"
        for st in g.sparse_initializer:
            yield st.values, f"{prefix}sparse initializer '{st.values.name}'"
            yield st.indices, f"{prefix}sparse initializer '{st.values.name}' indices"
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t, f"{prefix}node '{node.name}' attribute '{a.name}'"
                for t in a.tensors:
                    yield t, f"{prefix}node '{node.name}' attribute '{a.name}'"
                if a.HasField("g"):
                    yield from graph_tensors(a.g, f"{prefix}node '{node.name}' subgraph: ")
                for sg in a.graphs:
                    yield from graph_tensors(sg, f"{prefix}node '{node.name}' subgraph: ")

    for t, w in graph_tensors(model.graph, ""):
        if t.data_location == TensorProto.EXTERNAL:
            yield t, w
    for f in getattr(model, "functions", []):
        for node in f.node:
            for a in node.attribute:
                if a.HasField("t") and a.t.data_location == TensorProto.EXTERNAL:
                    yield a.t, f"function '{f.name}' node '{node.name}' attribute '{a.name}'"


def check_onnx_external_data(model, path: Path) -> None:
    """Every external-data location of ``model`` (loaded without external data) must be a relative
    path that stays inside the model's folder, also after resolving symlinks."""
    base = path.parent.resolve()
    for t, w in _external_tensors(model):
        loc = {e.key: e.value for e in t.external_data}.get("location", "")
        bad = None
        if not loc:
            bad = "has no location"
        elif os.path.isabs(loc) or Path(loc).is_absolute() or loc.startswith(("/", "\\")) or ":" in loc:
            bad = f"is an absolute path ('{loc}')"
        elif ".." in Path(loc.replace("\\", "/")).parts:
            bad = f"escapes the model's folder ('{loc}')"
        else:
            target = (base / loc).resolve()
            if target != base and base not in target.parents:
                bad = f"leaves the model's folder through a symlink ('{loc}' -> {target})"
        if bad:
            raise UnsafeModelError(f"{path}: {w}: external data location {bad}; refused before reading it")


def load_onnx(path: str | Path):
    """``onnx.load`` without following external data outside the model's folder."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many types
        raise UnsafeModelError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
    check_onnx_external_data(model, path)
    if any(True for _ in _external_tensors(model)):
        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:  # noqa: BLE001
            raise UnsafeModelError(f"{path}: cannot read its external data ({str(exc).splitlines()[0][:120]})") \
                from None
    return model
