"""The package's import structure: no module imports another's private names, no import
cycle at import time, and (slow) every module imports alone in a fresh interpreter."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    out = {}
    for path in sorted((SRC / "causalvae").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _top_level_imports(tree: ast.Module):
    """The import statements run when the module is imported (not those in functions, nor
    under ``if TYPE_CHECKING``)."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try)) and not (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)):
            yield from _top_level_imports(ast.Module(body=node.body + getattr(node, "orelse", []), type_ignores=[]))


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports at import time."""
    edges = {}
    for name, path in modules.items():
        found = set()
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in modules}
            elif node.module in modules:
                subs = {f"{node.module}.{a.name}" for a in node.names}
                found |= (subs & set(modules)) or {node.module}
                if subs - set(modules):  # names of the module itself, besides submodules
                    found.add(node.module)
        edges[name] = found - {name}
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_at_import_time():
    assert _cycle(_edges(_modules())) is None


def test_no_module_imports_a_private_name_of_another():
    private = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("causalvae"):
                private += [f"{name}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []


@pytest.mark.slow
def test_every_module_imports_alone():
    """Each module, first and alone in a fresh interpreter, imports without error or warning."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> str | None:
        res = subprocess.run([sys.executable, "-W", "error", "-c", f"import {name}"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
        return f"{name}: {res.stderr.strip().splitlines()[-1]}" if res.returncode else None

    # One interpreter per module, as many at once as there are cores (each mostly imports torch).
    names = [n for n in _modules() if not n.endswith("__main__")]
    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        failed = [f for f in pool.map(one, names) if f is not None]
    assert failed == []
