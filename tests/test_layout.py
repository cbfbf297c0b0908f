"""The library's layout: dependencies point one way (cli -> features -> kernel), no cycles.

The import graph comes from grimp, which reads every import statement of the package,
including those inside functions. Function-level imports are allowed only where start-up time
matters: the command line (``powrops.cli``), the entry point, and the path PostgreSQL runs once
per WAL segment (``wal push`` / ``wal fetch``).
"""

from __future__ import annotations

import ast
import re
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
        "bundle",
        "config",
        "counts",
        "durations",
        "errors",
        "findings",
        "format",
        "gate",
        "held",
        "notify",
        "schema",
        "tables",
        "threads",
    },
    {"__init__"},
]
KERNEL = LAYERS[-4] | LAYERS[-3] | LAYERS[-2]

#: Where imports inside functions keep start-up fast (see the module docstring): the command
#: line, the entry point and the WAL path PostgreSQL runs once per segment.
LAZY_IMPORTS_ALLOWED = frozenset(
    {
        "powrops.__main__",
        "powrops.backup.wal.entry",
        "powrops.storage",
        "powrops.storage.registry",
        "powrops.storage.spec",
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


#: What a view may not do: reach a database, a repository, a file, the environment or the
#: clock, or decide what was found (findings, times and parameters come in the result).
VIEW_FORBIDDEN_IMPORTS = ("psycopg", "sqlalchemy", "powrops.db", "powrops.storage", "boto3")
VIEW_FORBIDDEN_MODULES = frozenset({"os"})
VIEW_FORBIDDEN_CALLS = frozenset(
    {
        "connect", "execute", "executemany", "open", "write_text", "write_bytes", "mkdir",
        "unlink", "now", "today", "utcnow", "time", "monotonic", "getenv", "Finding",
    }
)  # fmt: skip
VIEW_FORBIDDEN_NAMES = frozenset({"environ"})


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def view_problems(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = _imported(node)
            forbidden = [n for n in names if n.startswith(VIEW_FORBIDDEN_IMPORTS)]
            forbidden += [n for n in names if n in VIEW_FORBIDDEN_MODULES]
            found += [f"imports {n}" for n in forbidden]
            if isinstance(node, ast.ImportFrom):
                found += [f"imports private {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]  # fmt: skip
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in VIEW_FORBIDDEN_CALLS:
                found.append(f"calls {name}() at line {node.lineno}")
        if isinstance(node, ast.Attribute) and node.attr in VIEW_FORBIDDEN_NAMES:
            found.append(f"reads {node.attr} at line {node.lineno}")
    return found


def test_views_are_pure() -> None:
    views = sorted([*LIB.glob("*/view.py"), *LIB.glob("*/*_view.py")])
    assert len(views) >= 8
    found = {str(v.relative_to(LIB)): view_problems(v.read_text()) for v in views}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_view_check_finds_planted_work() -> None:
    planted = (
        "import os\n"
        "from datetime import datetime\n"
        "from powrops.db import connect\n"
        "from powrops.reports.plotting import _helper\n"
        "def rows(s):\n    return connect(s).execute('x')\n"
        "def when():\n    return datetime.now()\n"
        "def where():\n    return os.environ['X']\n"
        "def judge():\n    return [Finding('c', 0, 'm')]\n"
    )
    assert sorted(view_problems(planted)) == [
        "calls Finding() at line 12",
        "calls connect() at line 6",
        "calls execute() at line 6",
        "calls now() at line 8",
        "imports os",
        "imports powrops.db",
        "imports private _helper",
        "reads environ at line 10",
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


def test_the_growth_forecast_loads_no_numpy() -> None:
    """The growth rate (the alerts command, the growth report's first cell) is a least-squares
    line in plain Python: loading it does not load numpy (a report's figures load it later,
    with matplotlib)."""
    code = "import sys, powrops.growth.forecast; print('numpy' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


#: The two registries, which load modules by name on purpose (a command group, a storage scheme),
#: and a report kernel's preload (the modules its notebook imports).
DYNAMIC_IMPORTS_ALLOWED = frozenset(
    {"powrops.cli.registry", "powrops.storage.registry", "powrops.reports.preload"}
)
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


# --- the map: docs/architecture.md and README's layout name only what is there ----------------

ROOT = LIB.parents[1]
#: Folders of the checkout (not packages of the library) the map may name.
CHECKOUT_FOLDERS = frozenset({"notebooks", "runbooks", "migrations", "tests", "benchmarks", "docs"})
_PACKAGE = re.compile(r"`((?:[a-z_]+/)+)`")
_PATH = re.compile(r"`((?:[a-z_]+/)+[a-z_]+\.py)`")
_BULLET = re.compile(r"^- \*\*`([a-z_]+)/`\*\*")
_MODULE = re.compile(r"`([a-z_]+\.py)`")


def _bullets(text: str) -> dict[str, str]:
    """Each feature bullet of the map (``- **`name/`**: ...``) with its continuation lines."""
    found: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = _BULLET.match(line)
        if match:
            current = match.group(1)
            found[current] = line
        elif current and line.startswith("  "):
            found[current] += "\n" + line
        else:
            current = None
    return found


def map_problems(text: str, lib: Path = LIB, root: Path = ROOT) -> list[str]:
    """What the map names that is not there: packages, module paths, a feature's modules."""
    packages = {name.rstrip("/") for name in _PACKAGE.findall(text)} - CHECKOUT_FOLDERS
    problems = [
        f"no package {name}/"
        for name in sorted(packages)
        if not (lib / name / "__init__.py").is_file()
    ]
    problems += [
        f"no file {path}"
        for path in sorted(set(_PATH.findall(text)))
        if not (lib / path).is_file() and not (root / path).is_file()
    ]
    for package, bullet in _bullets(text).items():
        here = {p.name for p in (lib / package).rglob("*.py")}
        problems += [f"no {package}/{m}" for m in sorted(set(_MODULE.findall(bullet)) - here)]
    return problems


def _commands(text: str) -> set[str]:
    return {m for m in _PATH.findall(text) if m.startswith("cli/")}


def test_the_map_names_only_what_is_there() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert map_problems(text) == []
    for command in sorted(_commands(text)):
        source = (LIB / command).read_text()
        assert "def register(" in source or command in ("cli/main.py", "cli/registry.py")


def test_the_map_lists_every_feature_of_the_layers() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("```")[1]
    listed = block.split("features", 1)[1].split("db.py", 1)[0].split()
    assert sorted(listed) == sorted(LAYERS[2])
    assert set(_bullets(text)) >= LAYERS[2]


def test_every_command_module_is_in_the_map() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = {f"cli/{p.name}" for p in (LIB / "cli").glob("*.py")}
    helpers = {"cli/__init__.py", "cli/__main__.py", "cli/common.py"}
    assert modules - helpers - _commands(text) == set()


def test_readme_layout_names_only_packages_that_are_there() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    lib_lines = layout.split("migrations/", 1)[0]
    names = set(re.findall(r"\b([a-z_]+)/(?=\s)", lib_lines)) - {"powrops", "lib"}
    assert names and [n for n in sorted(names) if not (LIB / n).is_dir()] == []
    assert set(LAYERS[2]) <= names


def test_the_map_check_finds_planted_mistakes(tmp_path: Path) -> None:
    lib = tmp_path / "powrops"
    (lib / "alerts").mkdir(parents=True)
    (lib / "alerts" / "__init__.py").write_text("")
    (lib / "alerts" / "run.py").write_text("")
    planted = (
        "- **`alerts/`**: the evaluation (`run.py`), the checks (`server_checks.py`).\n"
        "- **`monitoring/`**: gone.\n"
        "See `cli/alerts.py` and `notebooks/` and `tests/test_layout.py`.\n"
    )
    assert map_problems(planted, lib=lib, root=tmp_path) == [
        "no package monitoring/",
        "no file cli/alerts.py",
        "no file tests/test_layout.py",
        "no alerts/server_checks.py",
    ]


_LAZY_ROW = re.compile(r"^\| `([a-z0-9_/]+\.py)` \| ([A-Za-z0-9_, ]+) \|$", re.M)


def lazy_third_party(source: str) -> tuple[set[str], set[str]]:
    """The third-party and the standard-library modules imported inside functions."""
    third, standard = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    for name in _imported(inner):
                        top = name.split(".")[0]
                        if top in sys.stdlib_module_names:
                            standard.add(top)
                        elif top and top != "powrops":
                            third.add(top)
    return third, standard


def _lazy_in_code() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    third: dict[str, set[str]] = {}
    standard: dict[str, set[str]] = {}
    for module, path in _modules():
        if _lazy_allowed(module) and module.startswith(("powrops.cli", "powrops.__main__")):
            continue
        found, stdlib = lazy_third_party(path.read_text())
        rel = str(path.relative_to(LIB))
        if found:
            third[rel] = found
        if stdlib and not _lazy_allowed(module):
            standard[rel] = stdlib
    return third, standard


def test_lazy_third_party_imports_are_where_the_map_lists_them() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("| module | loads on first use |", 1)[1].split("\n\n", 1)[0]
    listed = {m: {n.strip() for n in names.split(",")} for m, names in _LAZY_ROW.findall(table)}
    third, standard = _lazy_in_code()
    assert third == listed
    assert standard == {}, "import the standard library at the top of the module"


def test_the_lazy_import_check_finds_planted_ones() -> None:
    planted = "import os\ndef a():\n    import zstandard\n    import json\n    import powrops.db\n"
    assert lazy_third_party(planted) == ({"zstandard"}, {"json"})


def init_problems(source: str) -> list[str]:
    """What a package's ``__init__.py`` does besides handing names on (docstring, imports,
    ``__all__``)."""
    found = []
    for index, node in enumerate(ast.parse(source).body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else []
        if [getattr(t, "id", None) for t in targets] == ["__all__"]:
            continue
        found.append(f"{type(node).__name__} at line {node.lineno}")
    return found


def test_package_inits_only_hand_names_on() -> None:
    inits = sorted(p for p in LIB.rglob("__init__.py") if p.parent != LIB)
    found = {str(p.relative_to(LIB)): init_problems(p.read_text()) for p in inits}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_init_check_finds_planted_logic() -> None:
    planted = '"""Doc."""\nfrom a import b\nX = 1\ndef f():\n    pass\n__all__ = ["b"]\n'
    assert init_problems(planted) == ["Assign at line 3", "FunctionDef at line 4"]
