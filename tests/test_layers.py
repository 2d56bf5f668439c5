"""The layers' direction, checked on every import of the production code.

Imports run one way: engine ← (the shipped tools | shared runtime pieces) ← thread service
← (Dapr adapter | gateway) ← client ← launcher. Two packages on one level do not import each
other, no module imports Dapr's SDK below the adapter, and no two modules import each other
through any path.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A level's packages are independent of each other.
LEVELS: list[list[str]] = [
    ["actors.engine"],
    ["actors.tools", "threadhost.common"],
    ["actors.threads"],
    ["actors.dapr_host", "gateway"],
    ["threadhost.client"],
    ["threadhost"],
]
# Packages that must not import the Dapr SDK (nor the sidecar client, which is Dapr's HTTP API).
DAPR_FREE = ["actors.engine", "actors.tools", "actors.threads"]
SIDECAR = "threadhost.common.sidecar"


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("actors", "gateway", "threadhost"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _owner(module: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name belongs to (a name imported from a module is not one)."""
    while module and module not in modules:
        module = module.rpartition(".")[0]
    return module or None


def _level(module: str) -> tuple[int, str]:
    best = (-1, "", "")
    for index, packages in enumerate(LEVELS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and len(package) > len(
                best[2]
            ):
                best = (index, package, package)
    return best[0], best[1]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = {_owner(name, modules) for name in _imports(module, path)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def test_imports_run_one_way_through_the_layers():
    wrong = []
    for module, targets in sorted(_graph().items()):
        level, package = _level(module)
        for target in sorted(targets):
            target_level, target_package = _level(target)
            if target_package in (package, "") or module == target_package:
                continue
            if target_level > level or (target_level == level and target_package != package):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layers' direction:\n" + "\n".join(wrong)


def test_the_engine_and_the_thread_service_know_nothing_of_dapr():
    wrong = []
    for module, path in sorted(_modules().items()):
        if any(module == p or module.startswith(p + ".") for p in DAPR_FREE):
            for name in sorted(_imports(module, path)):
                if name == "dapr" or name.startswith(("dapr.", SIDECAR)):
                    wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_two_modules_import_each_other():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


# A step, a route, a method: each reads on one screen; a class does one thing.
MAX_FUNCTION_LINES = 60
MAX_CLASS_METHODS = 25


def test_functions_and_classes_stay_small():
    long, wide = [], []
    for module, path in sorted(_modules().items()):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
            elif isinstance(node, ast.ClassDef):
                methods = [
                    n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
                if len(methods) > MAX_CLASS_METHODS:
                    wide.append(f"{module}.{node.name}: {len(methods)} methods")
    assert not long and not wide, "\n".join(long + wide)


def test_the_client_for_other_services_loads_no_server():
    """A service that calls threadhost imports its client, not the server's frameworks."""
    import subprocess
    import sys

    server = ["fastapi", "starlette", "uvicorn", "dapr", "openai", "anthropic", "mcp", "aiohttp"]
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, threadhost.client; print(' '.join(sys.modules))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert not {name.split(".")[0] for name in loaded} & set(server)
