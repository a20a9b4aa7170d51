"""The integer network file format (version 1).

A network is a directory::

    NET/network.json      graph as text: inputs, ops (kind, attrs, types,
                          shapes), outputs, notes, format name and version
    NET/arrays/*.npy      one integer array per file (weights, biases,
                          multipliers, shifts, thresholds, tables), each
                          listed in network.json with shape, dtype and SHA-256

Output is deterministic: the same network gives byte-identical files.
Loading checks the format name and version, every array's presence, shape,
dtype and checksum, then validates the network (types, overflow).
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np

from qat.ir.intervals import validate
from qat.ir.network import FORMAT_NAME, FORMAT_VERSION, Input, Network, NetworkError, Op
from qat.ir.types import type_from_json, type_to_json

GRAPH_FILE = "network.json"
ARRAY_DIR = "arrays"
ALLOWED_DTYPES = ("int64", "uint8")


class NetFileError(ValueError):
    """A network file that is missing, corrupt, truncated or from a newer qrtl."""


def _array_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _to_storable(arr: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return np.array(arr, order="C")  # (not ascontiguousarray: it turns a 0-d array into shape (1,))
    if arr.dtype == object or arr.dtype.kind in "iub":
        big = arr.size and (int(arr.max()) > (1 << 63) - 1 or int(arr.min()) < -(1 << 63))
        if big:
            raise NetFileError(f"{where}: array does not fit 64-bit integers")
        return arr.astype(np.int64, order="C")  # keeps 0-d (scalar) arrays 0-d
    raise NetFileError(f"{where}: arrays must be integers, got dtype {arr.dtype}")


def save(net: Network, path: str | Path) -> None:
    """Write ``net`` to directory ``path`` (replaced if it holds a network)."""
    validate(net)
    path = Path(path)
    # build every file in memory first, so a bad array or attribute cannot leave half a network behind
    files: dict[str, bytes] = {}
    ops_json = []
    for idx, op in enumerate(net.ops):
        arrays = {}
        for key in sorted(op.arrays):
            arr = _to_storable(op.arrays[key], f"{op.where()} array '{key}'")
            rel = f"{ARRAY_DIR}/{idx:03d}_{_safe(op.name)}.{_safe(key)}.npy"
            n = 2
            while rel in files:  # keys that differ only in unsafe characters
                rel = f"{ARRAY_DIR}/{idx:03d}_{_safe(op.name)}.{_safe(key)}_{n}.npy"
                n += 1
            data = _array_bytes(arr)
            files[rel] = data
            arrays[key] = {"file": rel, "shape": list(arr.shape), "dtype": str(arr.dtype),
                           "sha256": hashlib.sha256(data).hexdigest()}
        ops_json.append({"name": op.name, "kind": op.kind, "inputs": list(op.inputs), "shape": list(op.shape),
                         "type": type_to_json(op.type), "attrs": op.attrs, "arrays": arrays,
                         "source": op.source})
    doc = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": net.name,
        "inputs": [{"name": i.name, "shape": list(i.shape), "type": type_to_json(i.type),
                    "real_quantizer": i.real_quantizer} for i in net.inputs],
        "ops": ops_json,
        "outputs": list(net.outputs),
        "notes": list(net.notes),
        "meta": net.meta,
    }
    try:
        text = json.dumps(doc, indent=1, sort_keys=True, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise NetFileError(f"network '{net.name}': attributes cannot be stored as JSON ({exc})") from None
    if path.exists():
        if not (path / GRAPH_FILE).exists() and any(path.iterdir()):
            raise NetFileError(f"{path}: exists and is not a qrtl network directory; refusing to overwrite")
        shutil.rmtree(path)
    (path / ARRAY_DIR).mkdir(parents=True)
    for rel, data in files.items():
        (path / rel).write_bytes(data)
    (path / GRAPH_FILE).write_text(text)


def _json_default(obj):
    """numpy scalars and arrays in attrs/meta are stored as plain JSON numbers and lists."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON serialisable")


def load(path: str | Path) -> Network:
    """Read and validate a network directory (or its network.json)."""
    path = Path(path)
    if path.name == GRAPH_FILE:
        path = path.parent
    graph = path / GRAPH_FILE
    if not path.exists():
        raise NetFileError(f"{path}: no such network")
    if not graph.is_file():
        raise NetFileError(f"{path}: not a qrtl network (no {GRAPH_FILE})")
    try:
        doc = json.loads(graph.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NetFileError(f"{graph}: corrupt or truncated JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise NetFileError(f"{graph}: not a qrtl integer network (format field is {doc.get('format') if isinstance(doc, dict) else None!r})")
    version = doc.get("version")
    if not isinstance(version, int):
        raise NetFileError(f"{graph}: missing format version")
    if version > FORMAT_VERSION:
        raise NetFileError(f"{graph}: format version {version} is newer than this qrtl reads ({FORMAT_VERSION}); "
                           f"upgrade qrtl")
    try:
        inputs = [Input(d["name"], tuple(d["shape"]), type_from_json(d["type"]), d.get("real_quantizer"))
                  for d in doc["inputs"]]
        ops = []
        for d in doc["ops"]:
            arrays = {key: _load_array(path, d["name"], key, spec) for key, spec in d["arrays"].items()}
            ops.append(Op(d["name"], d["kind"], list(d["inputs"]), tuple(d["shape"]), type_from_json(d["type"]),
                          dict(d["attrs"]), arrays, d.get("source", "")))
        net = Network(doc["name"], inputs, ops, list(doc["outputs"]), list(doc.get("notes", [])),
                      dict(doc.get("meta", {})))
    except NetFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise NetFileError(f"{graph}: malformed network ({type(exc).__name__}: {exc})") from None
    try:
        validate(net)
    except NetworkError as exc:
        raise NetFileError(f"{graph}: {exc}") from None
    return net


def _load_array(root: Path, op_name: str, key: str, spec: dict) -> np.ndarray:
    f = root / spec["file"]
    where = f"{f} (op '{op_name}' array '{key}')"
    if not f.is_file():
        raise NetFileError(f"{where}: missing")
    data = f.read_bytes()
    if hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise NetFileError(f"{where}: checksum mismatch (corrupt or truncated)")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise NetFileError(f"{where}: unreadable ({exc})") from None
    if list(arr.shape) != list(spec["shape"]) or str(arr.dtype) != spec["dtype"] or spec["dtype"] not in ALLOWED_DTYPES:
        raise NetFileError(f"{where}: shape/dtype {arr.shape}/{arr.dtype} differ from the graph's "
                           f"{tuple(spec['shape'])}/{spec['dtype']}")
    return arr
