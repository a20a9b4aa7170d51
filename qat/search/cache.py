"""Job results on disk, keyed by the SHA-256 of everything the result depends on.

One JSON file per finished job (``<dir>/<kind>/<key[:2]>/<key>.json``), written atomically (a
temporary file renamed into place), so an interrupted search loses no finished job and the
same job (same content) is never run twice.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def content_key(*parts: Any) -> str:
    """SHA-256 hex digest of ``parts``: bytes as they are, everything else as canonical JSON."""
    h = hashlib.sha256()
    for p in parts:
        b = p if isinstance(p, (bytes, bytearray)) else json.dumps(p, sort_keys=True, default=str).encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


# the source that turns a model into Verilog and prices it (repository paths); verification also
# simulates it
GENERATOR_SOURCES = ("hls", "qat/ir", "qat/importers", "qat/search/price.py", "boards")
VERIFY_SOURCES = GENERATOR_SOURCES + ("qat/search/verify.py", "rtl_sim")
_SOURCE_SUFFIXES = (".py", ".cpp", ".h", ".v", ".json")


def code_fingerprint(sources: tuple[str, ...] = GENERATOR_SOURCES, root: str | Path | None = None) -> str:
    """SHA-256 of the source files under ``sources`` (paths relative to ``root``, default this source
    tree; relative path and bytes, sorted by path): part of the key of every job whose result depends
    on the generated Verilog (prices, verification), so a changed generator never serves a stale
    cached price or synthesis."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    files: list[Path] = []
    for src in sources:
        p = root / src
        files += [p] if p.is_file() else [f for f in p.rglob("*") if f.suffix in _SOURCE_SUFFIXES and f.is_file()
                                         and "__pycache__" not in f.parts]
    return content_key(*[x for f in sorted(files) for x in (f.relative_to(root).as_posix(), f.read_bytes())])


class JobCache:
    """Finished job results (JSON-serializable dicts) under ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def get(self, kind: str, key: str) -> dict | None:
        p = self._path(kind, key)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):  # a torn file cannot happen (atomic rename); a corrupt one is re-run
            return None

    def put(self, kind: str, key: str, value: dict) -> None:
        p = self._path(kind, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(value, sort_keys=True, indent=1) + "\n")
        os.replace(tmp, p)

    def put_bytes(self, kind: str, key: str, name: str, data: bytes) -> Path:
        """A binary artefact of a job (e.g. a fine-tuned model), next to its JSON."""
        p = self._path(kind, key).with_name(f"{key}.{name}")
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, p)
        return p

    def get_bytes(self, kind: str, key: str, name: str) -> bytes | None:
        p = self._path(kind, key).with_name(f"{key}.{name}")
        return p.read_bytes() if p.is_file() else None
