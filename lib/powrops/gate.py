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
  ask; the parameter decides.
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Callable
from typing import Protocol

from powrops.errors import ParameterError

_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off", ""})

#: Set by the report runner for every papermill execution (:mod:`powrops.reports.record`).
RUN_DIR_ENV = "POWROPS_RUN_DIR"


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
    if interactive():
        answer = _ask(ask or builtins.input, action, target)
        if answer is not None:
            if answer.strip() == expected:
                print(f"Confirmed: {action} on {describe(target)}.")
                return True
            typed = f"typed {answer.strip()!r}, not {expected!r}" if answer.strip() else "skipped"
            print(f"Not confirmed: {action} was not run ({typed}); nothing was changed.")
            return False
    if not wanted:
        print(
            f"Not confirmed: {action} was not run; nothing was changed. Review the plan, then "
            f"set {name} = True."
        )
    return wanted


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
