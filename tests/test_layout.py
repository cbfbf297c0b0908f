"""The library's layout: dependencies point one way (cli -> features -> kernel), no cycles.

The import graph comes from grimp, which reads every import statement of the package,
including those inside functions. Function-level imports are allowed only where start-up time
matters: the command line (``powrops.cli``), the entry point, and the path PostgreSQL runs once
per WAL segment (``wal push`` / ``wal fetch``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "powrops"

#: Layers, top first. A module may import its own layer and the layers below, never above.
LAYERS: list[set[str]] = [
    {"cli", "__main__"},
    {"demo"},
    {
        "alerts",
        "audit",
        "backup",
        "drill",
        "growth",
        "integrity",
        "maintenance",
        "metrics",
        "migrate",
        "quarterly",
        "readiness",
        "reports",
        "restore",
        "retention",
        "schedule",
        "verify",
    },
    {"db", "journal"},
    {"pg", "storage"},
    {
        "config",
        "durations",
        "errors",
        "findings",
        "format",
        "gate",
        "notify",
        "schema",
        "tables",
        "threads",
    },
    {"__init__"},
]
KERNEL = LAYERS[-4] | LAYERS[-3] | LAYERS[-2]

#: Where imports inside functions keep start-up fast (see the module docstring): the command
#: line, the entry point, the WAL path PostgreSQL runs once per segment, and the report
#: runner, which a notebook that only records its result must not load.
LAZY_IMPORTS_ALLOWED = frozenset(
    {
        "powrops.__main__",
        "powrops.backup.wal.entry",
        "powrops.storage",
        "powrops.storage.registry",
        "powrops.storage.spec",
        "powrops.reports.notebook",
    }
)


def _lazy_allowed(module: str) -> bool:
    return module in LAZY_IMPORTS_ALLOWED or module.startswith("powrops.cli")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("powrops", include_external_packages=False)


def part(module: str) -> str:
    """The top-level part of powrops a module belongs to (``__init__`` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(name: str) -> int:
    for index, names in enumerate(LAYERS):
        if name in names:
            return index
    raise AssertionError(f"powrops.{name} is in no layer of tests/test_layout.py: add it")


def edges(graph: grimp.ImportGraph) -> Iterable[tuple[str, str]]:
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            yield module, imported


def test_every_top_level_part_has_a_layer() -> None:
    packages = {p.parent.name for p in LIB.glob("*/__init__.py")}
    modules = {p.stem for p in LIB.glob("*.py")}
    for name in sorted(packages | modules):
        layer_of(name)


def test_top_level_modules_are_only_the_kernel() -> None:
    modules = {p.stem for p in LIB.glob("*.py")} - {"__init__", "__main__"}
    assert modules <= KERNEL, f"not kernel, belongs in a feature package: {modules - KERNEL}"


def test_imports_point_down(graph: grimp.ImportGraph) -> None:
    upward = [
        f"{importer} -> {imported}"
        for importer, imported in edges(graph)
        if layer_of(part(imported)) < layer_of(part(importer))
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def _cycles(nodes: Iterable[str], links: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in links.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def test_no_cycle_between_packages(graph: grimp.ImportGraph) -> None:
    links: dict[str, set[str]] = {}
    for importer, imported in edges(graph):
        if part(importer) != part(imported):
            links.setdefault(part(importer), set()).add(part(imported))
    assert _cycles(links, links) == []


def test_no_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    links: dict[str, set[str]] = {}
    for importer, imported in edges(graph):
        links.setdefault(importer, set()).add(imported)
    assert _cycles(graph.modules, links) == []


def test_the_cycle_check_finds_a_planted_cycle() -> None:
    links = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(links, links) == [["a", "b", "c"]]


#: What a view may not do: reach a database, a repository or a file.
VIEW_FORBIDDEN_IMPORTS = ("psycopg", "sqlalchemy", "powrops.db", "powrops.storage", "boto3")
VIEW_FORBIDDEN_CALLS = frozenset(
    {"connect", "execute", "executemany", "open", "write_text", "write_bytes", "mkdir", "unlink"}
)


def view_problems(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found += [f"imports {n}" for n in names if n.startswith(VIEW_FORBIDDEN_IMPORTS)]
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in VIEW_FORBIDDEN_CALLS:
                found.append(f"calls {name}() at line {node.lineno}")
    return found


def test_views_are_pure() -> None:
    views = sorted([*LIB.glob("*/view.py"), *LIB.glob("*/*_view.py")])
    assert len(views) >= 8
    found = {str(v.relative_to(LIB)): view_problems(v.read_text()) for v in views}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_view_check_finds_planted_work() -> None:
    planted = "from powrops.db import connect\ndef rows(s):\n    return connect(s).execute('x')\n"
    assert sorted(view_problems(planted)) == [
        "calls connect() at line 3",
        "calls execute() at line 3",
        "imports powrops.db",
    ]


def test_table_names_agree_with_the_definitions() -> None:
    """``powrops.tables`` names POWR's tables without SQLAlchemy; it must match ``schema``."""
    from powrops.schema import metadata
    from powrops.tables import PUBLIC_TABLES

    defined = tuple(t.name for t in metadata.sorted_tables if t.schema is None)
    assert defined == PUBLIC_TABLES


#: What a command that runs in a recovery's or a backup's critical path must not load.
HEAVY = ("sqlalchemy", "pandas", "matplotlib", "nbformat", "papermill", "jinja2")


@pytest.mark.parametrize(
    "module",
    [
        "powrops.restore.prepare",
        "powrops.backup.run",
        "powrops.verify.runner",
        "powrops.backup.wal.entry",
    ],
)
def test_commands_on_the_critical_path_start_light(module: str) -> None:
    """A restore, a backup and a verification start in a fraction of a second: none of them
    loads the table definitions, the reports or the notebooks' libraries."""
    code = (
        f"import importlib, sys; importlib.import_module({module!r}); "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = run.stdout.split()
    assert loaded == [], f"{module} loads {loaded}"


#: The two registries, which load modules by name on purpose (a command group, a storage scheme).
DYNAMIC_IMPORTS_ALLOWED = frozenset({"powrops.cli.registry", "powrops.storage.registry"})
_DYNAMIC_CALLS = frozenset({"import_module", "__import__"})


def _module_named(node: ast.expr) -> str:
    """The module name a dynamic import asks for, as far as the source shows it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        return first.value if isinstance(first, ast.Constant) else ""
    return ""


def dynamic_imports(source: str) -> list[str]:
    """``importlib.import_module`` and ``__import__`` calls that load a powrops module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _DYNAMIC_CALLS and _module_named(node.args[0]).startswith("powrops"):
            found.append(f"{name}({_module_named(node.args[0])!r}) at line {node.lineno}")
    return found


def function_level_imports(source: str) -> list[int]:
    """Lines of ``import powrops...`` and ``from powrops... import`` inside a function."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    names = [inner.module or ""]
                elif isinstance(inner, ast.Import):
                    names = [alias.name for alias in inner.names]
                else:
                    continue
                if any(name.startswith("powrops") for name in names):
                    lines.add(inner.lineno)
    return sorted(lines)


def _modules() -> Iterable[tuple[str, Path]]:
    for path in sorted(LIB.rglob("*.py")):
        module = ".".join(("powrops", *path.relative_to(LIB).with_suffix("").parts))
        yield module.removesuffix(".__init__"), path


def test_no_dynamic_import_of_powrops_outside_the_registries() -> None:
    found = [
        f"{module}: {call}"
        for module, path in _modules()
        if module not in DYNAMIC_IMPORTS_ALLOWED
        for call in dynamic_imports(path.read_text())
    ]
    assert not found, "dynamic imports hide edges from the layer and cycle checks:\n" + "\n".join(
        found
    )


def test_function_level_imports_only_where_start_up_matters() -> None:
    found = [
        f"{module}:{line}"
        for module, path in _modules()
        if not _lazy_allowed(module)
        for line in function_level_imports(path.read_text())
    ]
    assert not found, "imports inside functions:\n" + "\n".join(found)


def test_the_import_checks_find_planted_tricks() -> None:
    planted = (
        "import importlib\n"
        "def a():\n    return importlib.import_module('powrops.restore')\n"
        "def b():\n    return __import__('powrops.verify')\n"
        "def c(name):\n    return importlib.import_module(f'powrops.{name}')\n"
        "def d():\n    return importlib.import_module('json')\n"
        "def e():\n    import powrops.migrate\n"
        "def f():\n    from powrops import migrate\n"
        "def g():\n    import json\n"
    )
    assert dynamic_imports(planted) == [
        "import_module('powrops.restore') at line 3",
        "__import__('powrops.verify') at line 5",
        "import_module('powrops.') at line 7",
    ]
    assert function_level_imports(planted) == [11, 13]


def test_the_cycle_check_sees_a_plain_import_of_restore_from_verify() -> None:
    """The cycle the dynamic import used to hide: were ``verify`` to import ``restore`` again,
    the graph would close verify -> restore -> migrate -> verify."""
    links = {"verify": {"restore"}, "restore": {"migrate"}, "migrate": {"verify"}}
    assert _cycles(links, links) == [["migrate", "restore", "verify"]]
