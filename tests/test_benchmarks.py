"""The benchmarks are honest about their targets: a missed one makes the script exit non-zero,
so that ``make bench`` (which stops at the first failing script) fails on it.

No benchmark is run here (each builds a PostgreSQL site and takes minutes): the ``Targets``
object they share is tested as it is, and the source of every ``benchmarks/bench_*.py`` is
read for the wiring: its ``main`` makes its own ``Targets`` and returns its exit code, and the
script exits with what ``main`` returns.
"""

from __future__ import annotations

import ast
import os
import platform
import sys
import types
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))


@pytest.fixture
def site_module() -> types.ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import _site from their own folder
    try:
        import _site
    finally:
        sys.path.remove(str(BENCHMARKS))
    return _site


@pytest.fixture
def targets_type(site_module: types.ModuleType) -> type:
    return site_module.Targets  # type: ignore[no-any-return]


def test_a_run_names_its_machine(site_module: types.ModuleType) -> None:
    """Figures compare only on one machine: every run names the one it ran on."""
    line = site_module.machine()
    assert line.startswith(f"machine {platform.node()} (") and f"{os.cpu_count()} CPUs" in line


def test_what_a_tool_read_comes_from_the_kernel(
    site_module: types.ModuleType, tmp_path: Path
) -> None:
    """``run_counted`` reports the bytes a process tree really read: a child of a child
    reading a 3 MiB file counts, and a tool that fails still fails."""
    data = tmp_path / "data"
    data.write_bytes(os.urandom(3 << 20))
    _, _, reads = site_module.run_counted(["sh", "-c", f"cat {data} > /dev/null"], files=1)
    assert 3 << 20 <= reads.chars < (3 << 20) + (1 << 20) and reads.calls > 0
    assert reads.text().startswith("1 files, 3.0 MiB read")
    _, _, idle = site_module.run_counted(["true"])
    assert idle.chars < 1 << 20
    with pytest.raises(RuntimeError, match="failed"):
        site_module.run_counted(["sh", "-c", f"cat {data} > /dev/null; exit 4"])


def test_a_missed_target_makes_the_exit_code_non_zero(
    targets_type: type, capsys: pytest.CaptureFixture[str]
) -> None:
    met = targets_type()
    assert met.check("verify <= pgBackRest", True) == "met"
    assert met.exit_code() == 0
    missed = targets_type()
    assert missed.check("verify <= pgBackRest", True) == "met"
    assert missed.check("chain / full <= 1.5", False) == "TARGET MISSED"
    assert missed.check("restore <= pgBackRest", True) == "met"
    capsys.readouterr()
    assert missed.exit_code() == 1
    assert "1 of 3 targets missed: chain / full <= 1.5" in capsys.readouterr().out
    assert targets_type().exit_code() == 0  # each main makes its own: nothing carries over


def _main(tree: ast.Module) -> ast.FunctionDef:
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert len(found) == 1
    return found[0]


def _returns(function: ast.FunctionDef) -> list[ast.Return]:
    """The return statements of ``function`` itself, not of the functions it defines."""
    found: list[ast.Return] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Return):
                found.append(child)
            visit(child)

    visit(function)
    return found


def _exits_with_main(tree: ast.Module) -> bool:
    """``if __name__ == "__main__":`` ends in ``sys.exit(main())`` or ``raise
    SystemExit(main())``."""
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            text = ast.unparse(node.body[-1])
            return text in ("sys.exit(main())", "raise SystemExit(main())")
    return False


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_benchmark_exits_with_its_targets_exit_code(script: Path) -> None:
    tree = ast.parse(script.read_text())
    main = _main(tree)
    source = ast.unparse(main)
    assert _exits_with_main(tree), f"{script.name}: the script must exit with main()'s code"
    assert "verdict(" not in script.read_text(), f"{script.name}: a verdict outside Targets"
    checks = ".check(" in script.read_text()
    made = [n for n in ast.walk(main) if isinstance(n, ast.Assign)
            and ast.unparse(n.value) == "Targets()"]  # fmt: skip
    if not checks:  # informational only (bench_fleet): no target to miss
        assert not made and "Targets" not in source
        return
    assert len(made) == 1, f"{script.name}: main must make its own Targets"
    name = ast.unparse(made[0].targets[0])
    returns = [ast.unparse(r.value) if r.value else "None" for r in _returns(main)]
    assert returns and set(returns) == {f"{name}.exit_code()"}, (script.name, returns)
    module_level = [n for n in tree.body if isinstance(n, ast.Assign)
                    and "Targets(" in ast.unparse(n.value)]  # fmt: skip
    assert not module_level, f"{script.name}: no Targets at module level"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_benchmark_names_its_machine_at_start_and_end(script: Path) -> None:
    assert script.read_text().count("machine()") >= 2, f"{script.name}: machine() at start and end"


def test_every_benchmark_is_checked() -> None:
    assert len(SCRIPTS) >= 9 and BENCHMARKS / "bench_verify_retention.py" in SCRIPTS
