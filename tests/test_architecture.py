"""The package boundaries hold: no import cycles, and the integer network is the one interface
between stages (generators and simulators never read a framework model)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qat", "hls", "rtl_sim", "boards", "qrtl")
FRAMEWORKS = ("tensorflow", "keras", "qkeras", "torch", "brevitas", "qonnx", "onnx")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Project modules and top-level packages imported at run time (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text())
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING":
            n.body = []
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_import_cycles():
    mods = _modules()
    graph = {m: {t for t in _imports(m, p, mods) if t in mods and t != m} for m, p in mods.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_generators_and_simulators_read_only_the_integer_network():
    mods = _modules()
    bridge = {"hls.cpp.hls4ml_bridge"}  # builds hls4ml's project from the QKeras model itself, by design
    for m, p in mods.items():
        if not m.startswith(("hls", "rtl_sim", "boards")) or m in bridge:
            continue
        for t in _imports(m, p, mods):
            assert not t.startswith(("qat.importers", "qat.recipes", "qat.econ")), f"{m} imports {t}"
            assert t.split(".")[0] not in FRAMEWORKS, f"{m} imports {t}"


def test_the_ir_depends_on_nothing_else():
    mods = _modules()
    for m, p in mods.items():
        if m.startswith("qat.ir"):
            for t in _imports(m, p, mods):
                assert not t.startswith(("qat.importers", "qat.recipes", "qat.econ", "hls", "rtl_sim", "qrtl")), \
                    f"{m} imports {t}"
                assert t.split(".")[0] not in FRAMEWORKS, f"{m} imports {t}"
