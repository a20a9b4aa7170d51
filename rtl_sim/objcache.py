"""A compiler cache for Verilator's run-time library objects.

Every Verilator build compiles the same run-time sources (``verilated.cpp``,
``verilated_vpi.cpp``, ``verilated_threads.cpp``, ``verilated_dpi.cpp``:
~12 s of g++ per build) although they do not depend on the design.
Verilator's makefiles run every compile through ``$(OBJCACHE)`` (meant for
ccache); rtl_sim.cosim.tool_env points it at this module, which caches the
objects of those sources only and runs every other command unchanged.

Key: the full compiler command line, the compiler executable (path, size,
mtime), the source's SHA-256 and the names, sizes and mtimes of every file
in the Verilator include directory (headers).  A different flag (waveforms,
optimisation level, defines), compiler or Verilator version is a miss.
Entries are written to a temporary name and renamed, so concurrent builds
are safe.  Set ``QRTL_NO_OBJCACHE=1`` to disable it; the cache lives in
``$QRTL_CACHE_DIR`` (default ``$XDG_CACHE_HOME/qrtl`` or ``~/.cache/qrtl``).

Run as ``python -m rtl_sim.objcache COMPILER ARGS...`` (through the small
shell script that :func:`wrapper` writes).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHED_SOURCES = ("verilated.cpp", "verilated_vpi.cpp", "verilated_threads.cpp", "verilated_dpi.cpp")
VERSION = 1


def cache_dir() -> Path:
    if os.environ.get("QRTL_CACHE_DIR"):
        return Path(os.environ["QRTL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qrtl"


def wrapper() -> str | None:
    """Path of an executable that runs this module (None when caching is off or
    impossible: a path with spaces cannot go into MAKEFLAGS)."""
    if os.environ.get("QRTL_NO_OBJCACHE"):
        return None
    d = cache_dir() / f"verilator-objects-v{VERSION}"
    script = d / "objcache"
    root = Path(__file__).resolve().parents[1]
    text = f"#!/bin/sh\nPYTHONPATH='{root}' exec '{sys.executable}' -m rtl_sim.objcache \"$@\"\n"
    if any(c.isspace() or c in "'\"\\$" for c in str(script) + str(root) + sys.executable):
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
        if not script.exists() or script.read_text() != text:
            tmp = d / f".objcache.{os.getpid()}"
            tmp.write_text(text)
            tmp.chmod(0o755)
            os.replace(tmp, script)
    except OSError:
        return None
    return str(script)


def _file_id(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def _key(argv: list[str], src: Path) -> str | None:
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    headers = []
    for d in (src.parent, src.parent / "vltstd"):
        if d.is_dir():
            headers += [_file_id(p) for p in sorted(d.iterdir()) if p.is_file()]
    doc = {"argv": argv, "compiler": _file_id(Path(exe).resolve()),
           "source": hashlib.sha256(src.read_bytes()).hexdigest(), "headers": headers}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _cacheable(argv: list[str]) -> tuple[Path, Path] | None:
    """(source, object) for a ``-c -o X.o .../verilated*.cpp`` compile of the run-time library."""
    if "-c" not in argv or "-o" not in argv:
        return None
    i = argv.index("-o")
    if i + 1 >= len(argv):
        return None
    obj = Path(argv[i + 1])
    srcs = [a for a in argv[1:] if a.endswith(".cpp")]
    if len(srcs) != 1 or Path(srcs[0]).name not in CACHED_SOURCES or not Path(srcs[0]).is_absolute():
        return None
    if obj.name != Path(srcs[0]).with_suffix(".o").name or "/" in argv[i + 1]:
        return None
    return Path(srcs[0]), obj


def run(argv: list[str]) -> int:
    target = _cacheable(argv) if argv else None
    key = _key(argv, target[0]) if target else None
    if key is None:
        return subprocess.call(argv)
    src, obj = target
    dep = obj.with_suffix(".d")
    entry = cache_dir() / f"verilator-objects-v{VERSION}" / key[:2] / key
    if (entry / obj.name).is_file():
        shutil.copyfile(entry / obj.name, obj)
        if (entry / dep.name).is_file():
            shutil.copyfile(entry / dep.name, dep)
        return 0
    rc = subprocess.call(argv)
    if rc == 0 and obj.is_file():
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp"))
            shutil.copyfile(obj, tmp / obj.name)
            if dep.is_file():
                shutil.copyfile(dep, tmp / dep.name)
            try:
                os.replace(tmp, entry)  # atomic; another build may have stored it first
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass  # caching is best effort
    return rc


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
