"""The project's own files: dependency lists in sync, notebooks committed clean, CI wiring."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    name, _, rest = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?(.*)$", requirement.strip()).groups()  # type: ignore[union-attr]
    return name.lower().replace("_", "-") + (_ or "") + rest.replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {
        _normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    }
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1
    listed = {_normalise(r) for r in pip_lists[0]}
    assert listed == wanted, (
        f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    )
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"]
    assert project["requires-python"] == ">=3.11"


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
