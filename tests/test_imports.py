"""The package's import structure: no module imports another's private names, no import
cycle at import time, and (slow) every module imports alone in a fresh interpreter."""

from __future__ import annotations

import ast
import json
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


# The child of a fork imports one module of the package and reports on the pipe ``w``; the
# parent has imported only third-party and standard modules, under the same -W error.
_FORK_SERVER = """
import importlib, json, os, sys
for dep in json.loads(sys.argv[1]):
    try:
        importlib.import_module(dep)
    except ImportError:
        pass  # an optional dependency: the module guarding it is tested as it is
failed = []
for name in json.loads(sys.argv[2]):
    assert not any(m == 'causalvae' or m.startswith('causalvae.') for m in sys.modules)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            msg, code = b'', 0
        except BaseException as e:
            msg, code = f'{type(e).__name__}: {e}'.encode(), 1
        os.write(w, msg)
        os._exit(code)
    os.close(w)
    with os.fdopen(r, 'rb') as f:
        msg = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(f'{name}: {msg or status}')
print(json.dumps(failed))
"""


def _third_party(modules: dict[str, Path]) -> list[str]:
    """The modules outside the package that the package's modules import at import time."""
    found = set()
    for path in modules.values():
        for node in _top_level_imports(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else ([node.module] if node.level == 0 and node.module else [])
            found |= {n for n in names if n.split(".")[0] != "causalvae"}
    return sorted(found)


@pytest.mark.slow
def test_every_module_imports_alone():
    """Each module of the package, first and alone in a fresh interpreter, imports without
    error or warning. The interpreter is a fork of one that has imported the third-party
    modules the package imports (torch, pyro, ...: most of the time of a fresh start) and no
    module of the package; on a system without fork, one new interpreter per module."""
    modules = _modules()
    names = [n for n in modules if not n.endswith("__main__")]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    if hasattr(os, "fork"):
        res = subprocess.run([sys.executable, "-W", "error", "-c", _FORK_SERVER, json.dumps(_third_party(modules)), json.dumps(names)],
                             capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout.strip().splitlines()[-1]) == []
        return
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> str | None:
        res = subprocess.run([sys.executable, "-W", "error", "-c", f"import {name}"], capture_output=True, text=True, env=env)
        return f"{name}: {res.stderr.strip().splitlines()[-1]}" if res.returncode else None

    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        failed = [f for f in pool.map(one, names) if f is not None]
    assert failed == []
