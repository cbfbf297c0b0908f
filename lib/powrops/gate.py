"""The one confirmation gate for every action that changes data or the cluster.

Rules, the same for every runbook and command:

- **one confirmation per action**: :func:`confirm` is called once for each change it guards,
  never with one flag for two actions;
- **strict parameters**: ``True``/``False``, and the strings ``"true"``, ``"yes"``, ``"1"``
  (and ``"false"``, ``"no"``, ``"0"``, ``""``) as papermill passes them; anything else is an
  error naming the parameter, never a truthy "yes" (``"false"`` used to mean yes);
- **the server named**: the prompt shows the server, its host and port, and the database;
  the answer to type is the server's name when the configuration names several servers
  (``[servers.*]``: a primary and a staging server may both hold a database ``powr``), else
  the database's name;
- **typed at run time in JupyterLab**: opened by hand, a runbook asks the person to type that
  name; a ``confirm = True`` saved in the notebook (which JupyterLab autosaves) is not enough,
  and the answer is never stored in the notebook;
- **explicit under papermill**: a scheduled or ``powrops report run`` execution has no one to
  ask; the parameter decides;
- **every decision kept**: in a run's folder (a report run's or a working copy's) each
  decision is written to ``confirmations.json`` (the action, how it was decided, whether it
  was confirmed), which the run's record reads: a wrong name typed at the prompt is an action
  asked for and refused, which the archive grades WARNING (:mod:`powrops.reports.record`).
"""

from __future__ import annotations

import builtins
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from powrops.errors import ParameterError, ReportError

_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off", ""})

#: Set by the report runner for every papermill execution (:mod:`powrops.reports.record`).
RUN_DIR_ENV = "POWROPS_RUN_DIR"
#: Set in a working copy's kernel by its recorder (:mod:`powrops.reports.evidence`).
WORKING_COPY_ENV = "POWROPS_WORKING_COPY"
#: The notebook a kernel started by Jupyter Server runs (JupyterLab's session).
SESSION_ENV = "JPY_SESSION_NAME"
#: The decisions of a run, in its folder.
CONFIRMATIONS_FILE = "confirmations.json"

#: How a decision was taken (:attr:`Decision.how`).
TYPED = "typed"  # the expected name typed at the prompt
REFUSED = "refused"  # another name typed: asked for, and refused
SKIPPED = "skipped"  # Enter at the prompt: left out, as a dry run leaves it
PARAMETER = "parameter"  # no one to ask (papermill): the parameter decided


@dataclass(frozen=True)
class Decision:
    """One confirmation: the action, the parameter that guards it, how it was decided."""

    action: str
    parameter: str
    how: str
    confirmed: bool
    typed: str | None = None  # a refused answer, as typed
    expected: str | None = None

    @property
    def refused(self) -> bool:
        """Asked for and refused: a name typed that was not the one to type."""
        return self.how == REFUSED

    def describe(self) -> str:
        """How the action was (not) confirmed, in one phrase for a report's header."""
        if self.how == TYPED:
            return f"{self.action}: confirmed, {self.expected} typed at the prompt"
        if self.how == REFUSED:
            return (
                f"{self.action}: NOT confirmed ({self.typed!r} typed, not {self.expected!r}); "
                "not run, nothing changed"
            )
        if self.how == SKIPPED:
            return f"{self.action}: skipped at the prompt; not run"
        if self.confirmed:
            return f"{self.action}: confirmed by the parameter {self.parameter} = True"
        return f"{self.action}: not run ({self.parameter} = False: a dry run)"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "refused": self.refused, "described": self.describe()}


class Target(Protocol):
    """What an action acts on, as a confirmation names it (:class:`powrops.db.Identity`)."""

    @property
    def database(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int | None: ...

    @property
    def server(self) -> str: ...

    @property
    def several_servers(self) -> bool: ...


def answer_for(target: Target | str) -> str:
    """The name to type: the server's when several are configured, else the database's (a
    plain string is a database's name)."""
    if isinstance(target, str):
        return target
    return target.server if target.several_servers else target.database


def describe(target: Target | str) -> str:
    """'server primary (db1.example:5432, database powr)'; 'database powr' for a name."""
    if isinstance(target, str):
        return f"database {target}"
    where = f"{target.host}:{target.port}" if target.port else target.host
    return f"server {target.server} ({where}, database {target.database})"


def _what_to_type(target: Target | str) -> str:
    kind = "server" if not isinstance(target, str) and target.several_servers else "database"
    return f"the {kind}'s name, {answer_for(target)},"


def parse_confirm(value: object, name: str = "confirm") -> bool:
    """A confirmation parameter as a bool, strictly; ParameterError for anything unclear."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ParameterError(
        f"{name} = {value!r}: expected True or False (or one of the words "
        f"{', '.join(sorted(_TRUE))} / {', '.join(sorted(w for w in _FALSE if w))})"
    )


def interactive() -> bool:
    """Whether a person runs this: a Jupyter kernel that powrops' runner did not start."""
    if os.environ.get(RUN_DIR_ENV):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def confirm(
    action: str,
    value: object,
    *,
    target: Target | str,
    name: str = "confirm",
    ask: Callable[[str], str] | None = None,
) -> bool:
    """Whether ``action`` (one change, on ``target``: the run's :class:`powrops.db.Identity`,
    or a database's name) may run.

    Under papermill the parameter ``value`` decides. Opened by hand in JupyterLab the person
    types the server's name (several servers configured) or the database's to go on; anything
    else skips the action. Either way, a skipped action says so, starting with "Not
    confirmed", and says that it was not run.
    """
    wanted = parse_confirm(value, name)
    expected = answer_for(target)
    by_hand = interactive()
    if by_hand:
        _require_evidence(action)
    answer = _ask(ask or builtins.input, action, target) if by_hand else None
    decision = _decide(action, name, wanted, expected, answer)
    if decision.how == TYPED:
        print(f"Confirmed: {action} on {describe(target)}.")
    elif decision.how in (REFUSED, SKIPPED):
        typed = f"typed {decision.typed!r}, not {expected!r}" if decision.refused else "skipped"
        print(f"Not confirmed: {action} was not run ({typed}); nothing was changed.")
    elif not wanted:
        print(
            f"Not confirmed: {action} was not run; nothing was changed. Review the plan, then "
            f"set {name} = True."
        )
    _keep(decision)
    return decision.confirmed


def _require_evidence(action: str) -> None:
    """Refuse ``action`` in a notebook opened in JupyterLab whose kernel keeps no evidence:
    a template of runbooks/ run itself, or a working copy run without its first cell (the
    recorder). What it did would not be archived."""
    notebook = os.environ.get(SESSION_ENV)
    if run_folder() is not None or not notebook:
        return
    raise ReportError(
        f"{action}: not run: {notebook} keeps no evidence (what it does is not archived): "
        "it is not a working copy, or the working copy's first cell, which starts its "
        "recorder, has not run. Open a working copy with powrops runbook NAME (a template "
        "in runbooks/ is never run itself) and run it from its first cell."
    )


def _decide(action: str, name: str, wanted: bool, expected: str, answer: str | None) -> Decision:
    """The decision: the typed answer when there is one, else the parameter's value."""
    if answer is None:
        return Decision(action, name, PARAMETER, wanted)
    typed = answer.strip()
    if typed == expected:
        return Decision(action, name, TYPED, True, expected=expected)
    how = REFUSED if typed else SKIPPED
    return Decision(action, name, how, False, typed=typed or None, expected=expected)


def run_folder() -> Path | None:
    """The folder of the run this process executes (a report run's, a working copy's)."""
    value = os.environ.get(RUN_DIR_ENV) or os.environ.get(WORKING_COPY_ENV)
    return Path(value) if value else None


def _keep(decision: Decision) -> None:
    """Add ``decision`` to the run folder's decisions (replacing an earlier one on the same
    action: a cell run again); nothing outside a run."""
    folder = run_folder()
    if folder is None or not folder.is_dir():
        return
    kept = [d for d in decisions(folder) if d["action"] != decision.action]
    path = folder / CONFIRMATIONS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([*kept, decision.to_dict()], indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def decisions(folder: Path) -> list[dict[str, Any]]:
    """The decisions kept in a run folder, in the order they were taken ([] when none)."""
    try:
        data = json.loads((folder / CONFIRMATIONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def confirm_at_terminal(
    action: str, target: Target | str, *, yes: bool, ask: Callable[[str], str] | None = None
) -> bool:
    """The command-line form of the gate: ``--yes`` decides; without it a person at a
    terminal types the server's name (several servers configured) or the database's; with
    no terminal it is an error naming ``--yes`` (a scheduled command must say what it
    wants)."""
    if yes:
        return True
    if ask is None:
        if not sys.stdin.isatty():
            raise ParameterError(f"not confirmed: pass --yes to {action} without a prompt")
        ask = builtins.input
    answer = ask(f"{action} on {describe(target)}? type {_what_to_type(target)} to go on: ")
    return answer.strip() == answer_for(target)


def _ask(ask: Callable[[str], str], action: str, target: Target | str) -> str | None:
    """The typed answer, or None when the kernel cannot ask (papermill without the runner)."""
    prompt = f"{action} on {describe(target)}: type {_what_to_type(target)} or Enter to skip: "
    try:
        return ask(prompt)
    except Exception as exc:  # IPython's StdinNotImplementedError when no one can answer
        if type(exc).__name__ == "StdinNotImplementedError":
            return None
        raise
