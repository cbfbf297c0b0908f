"""The one confirmation gate for every action that changes data or the cluster.

Rules, the same for every runbook and command:

- **one confirmation per action**: :func:`confirm` is called once for each change it guards,
  never with one flag for two actions;
- **strict parameters**: ``True``/``False``, and the strings ``"true"``, ``"yes"``, ``"1"``
  (and ``"false"``, ``"no"``, ``"0"``, ``""``) as papermill passes them; anything else is an
  error naming the parameter, never a truthy "yes" (``"false"`` used to mean yes);
- **typed at run time in JupyterLab**: opened by hand, a runbook asks the person to type the
  name of the database the action changes; a ``confirm = True`` saved in the notebook (which
  JupyterLab autosaves) is not enough, and the answer is never stored in the notebook;
- **explicit under papermill**: a scheduled or ``powrops report run`` execution has no one to
  ask; the parameter decides.
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Callable

from powrops.errors import ParameterError

_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off", ""})

#: Set by the report runner for every papermill execution (:mod:`powrops.reports.record`).
RUN_DIR_ENV = "POWROPS_RUN_DIR"


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
    target: str,
    name: str = "confirm",
    ask: Callable[[str], str] | None = None,
) -> bool:
    """Whether ``action`` (one change, on the database ``target``) may run.

    Under papermill the parameter ``value`` decides. Opened by hand in JupyterLab the person
    types ``target`` to go on; anything else skips the action. Either way, a skipped action
    says so, starting with "Not confirmed".
    """
    wanted = parse_confirm(value, name)
    if interactive():
        answer = _ask(ask or builtins.input, action, target)
        if answer is not None:
            if answer.strip() == target:
                print(f"Confirmed: {action} on {target}.")
                return True
            print(f"Not confirmed: {action} was not run (typed {answer.strip()!r}).")
            return False
    if not wanted:
        print(f"Not confirmed: {action} was not run. Review the plan, then set {name} = True.")
    return wanted


def confirm_at_terminal(
    action: str, target: str, *, yes: bool, ask: Callable[[str], str] | None = None
) -> bool:
    """The command-line form of the gate: ``--yes`` decides; without it a person at a
    terminal types the name of the database ``target``; with no terminal it is an error
    naming ``--yes`` (a scheduled command must say what it wants)."""
    if yes:
        return True
    if ask is None:
        if not sys.stdin.isatty():
            raise ParameterError(f"not confirmed: pass --yes to {action} without a prompt")
        ask = builtins.input
    answer = ask(f"{action} on database {target}? type its name: ")
    return answer.strip() == target


def _ask(ask: Callable[[str], str], action: str, target: str) -> str | None:
    """The typed answer, or None when the kernel cannot ask (papermill without the runner)."""
    try:
        return ask(f"{action} on database {target}: type its name to go on, or Enter to skip: ")
    except Exception as exc:  # IPython's StdinNotImplementedError when no one can answer
        if type(exc).__name__ == "StdinNotImplementedError":
            return None
        raise
