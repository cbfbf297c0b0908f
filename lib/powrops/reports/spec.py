"""The report notebooks of a project and their parameters.

``discover`` finds the scheduled reports (``notebooks/``) and the runbooks (``runbooks/``) of a
checkout or of the installed package, ``read_spec`` reads one notebook's description and the
parameters of its ``parameters`` cell, and ``coerce_parameters`` checks given values against
them, converting strings as typed on the command line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powrops import bundle
from powrops.bundle import Folder
from powrops.errors import ParameterError, ReportError
from powrops.reports import papermill_s3  # noqa: F401  (before papermill is loaded)
from powrops.reports.html import read_notebook

if TYPE_CHECKING:
    import nbformat

KINDS: dict[Folder, str] = {"notebooks": "scheduled", "runbooks": "runbook"}


@dataclass(frozen=True)
class ReportParameter:
    """One parameter of a report notebook, from its ``parameters`` cell."""

    name: str
    type_name: str
    default: Any
    default_source: str
    help: str = ""

    def describe(self) -> str:
        return f"{self.name} ({self.type_name}, default {self.default_source})"


@dataclass(frozen=True)
class ReportSpec:
    """A report notebook found in the project: scheduled report or runbook."""

    name: str
    path: Path
    kind: str
    description: str
    parameters: dict[str, ReportParameter] = field(default_factory=dict)

    @property
    def hide_code(self) -> bool:
        return self.kind == "scheduled"


# --- discovery -----------------------------------------------------------------------------


def discover(root: Path | None = None) -> dict[str, ReportSpec]:
    """All report notebooks: ``notebooks/*.ipynb`` and ``runbooks/*.ipynb`` under ``root``,
    else those of the checkout or of the installed package (:mod:`powrops.bundle`)."""
    specs: dict[str, ReportSpec] = {}
    for path, kind in _notebooks(root):
        if path.stem in specs:
            raise ReportError(_used_twice(path.stem, [specs[path.stem].path, path]))
        specs[path.stem] = read_spec(path, kind)
    return specs


def find(name: str, root: Path | None = None) -> ReportSpec:
    """The report ``name``, as :func:`discover` finds it, reading only its own notebook."""
    return read_spec(*locate(name, root))


def locate(name: str, root: Path | None = None) -> tuple[Path, str]:
    """The path and kind of report ``name``'s notebook, without reading it."""
    found = [(path, kind) for path, kind in _notebooks(root) if path.stem == name]
    if not found:
        available = ", ".join(sorted({path.stem for path, _ in _notebooks(root)})) or "none"
        raise ReportError(f"unknown report {name!r}; available reports: {available}")
    if len(found) > 1:
        raise ReportError(_used_twice(name, [path for path, _ in found]))
    return found[0]


def _notebooks(root: Path | None) -> Iterator[tuple[Path, str]]:
    """Every report notebook's path and kind, scheduled reports first."""
    for folder_name, kind in KINDS.items():
        folder = root / folder_name if root is not None else bundle.folder(folder_name)
        for path in sorted(folder.glob("*.ipynb")):
            if not path.name.startswith("."):
                yield path, kind


def _used_twice(name: str, paths: list[Path]) -> str:
    return f"report name {name!r} is used twice: {paths[0].resolve()} and {paths[1]}"


def read_spec(path: Path, kind: str) -> ReportSpec:
    """The description and parameters of one notebook."""
    try:
        nb = read_notebook(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read notebook {path}: {exc}") from exc
    return ReportSpec(
        name=path.stem,
        path=path.resolve(),
        kind=kind,
        description=_description(nb),
        parameters=_parameters(path),
    )


def _description(nb: nbformat.NotebookNode) -> str:
    """The first heading of the first markdown cell, without its ``#`` marks."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in str(cell.source).splitlines():
            if line.lstrip().startswith("#"):
                return line.strip().lstrip("#").strip()
        return ""
    return ""


def _parameters(path: Path) -> dict[str, ReportParameter]:
    import papermill

    found = papermill.inspect_notebook(str(path))
    return {name: _parameter(name, info) for name, info in found.items()}


def _parameter(name: str, info: Mapping[str, Any]) -> ReportParameter:
    source = str(info.get("default", ""))
    try:
        default = ast.literal_eval(source)
        literal = True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        default, literal = None, False
    inferred = str(info.get("inferred_type_name") or "")
    if literal and default is not None:
        type_name = type(default).__name__
    elif inferred in _CONVERTERS:
        type_name = inferred
    else:
        type_name = "str"
    return ReportParameter(name, type_name, default, source, str(info.get("help") or ""))


# --- parameters ----------------------------------------------------------------------------


def _to_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"true", "yes", "on", "1"}:
        return True
    if value in {"false", "no", "off", "0"}:
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


def _literal_of(kind: type) -> Any:
    def convert(text: str) -> Any:
        value = ast.literal_eval(text)
        if not isinstance(value, kind):
            raise ValueError(f"expected a {kind.__name__} literal")
        return value

    return convert


_CONVERTERS: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _to_bool,
    "list": _literal_of(list),
    "dict": _literal_of(dict),
    "tuple": _literal_of(tuple),
}


def coerce_parameters(spec: ReportSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check names against the notebook's parameters and convert string values.

    Strings (as typed on the command line) become the type of the parameter's default;
    other values are passed through as given.
    """
    result: dict[str, Any] = {}
    for name, value in given.items():
        param = spec.parameters.get(name)
        if param is None:
            known = ", ".join(p.describe() for p in spec.parameters.values()) or "none"
            raise ParameterError(
                f"unknown parameter {name!r} for report {spec.name!r}; its parameters are: {known}",
                parameter=name,
            )
        result[name] = _convert(spec, param, value)
    return result


def _convert(spec: ReportSpec, param: ReportParameter, value: Any) -> Any:
    if not isinstance(value, str) or param.type_name == "str":
        return value
    converter = _CONVERTERS.get(param.type_name, str)
    try:
        return converter(value)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ParameterError(
            f"parameter {param.name!r} of report {spec.name!r} expects {param.type_name} "
            f"(default {param.default_source}), got {value!r}: {exc}",
            parameter=param.name,
        ) from exc
