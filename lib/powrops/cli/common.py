"""What the command groups share: the argument parser class, the run's settings, JSON output.

Handlers return a :class:`~powrops.findings.Severity` (or its int value); ``main`` turns it
into the exit code through :func:`powrops.findings.exit_code`, the one mapping every command
uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from powrops.errors import EXIT_UNKNOWN, ParameterError

if TYPE_CHECKING:
    from powrops.config import Settings


class Parser(argparse.ArgumentParser):
    """argparse with the monitoring exit code (3, UNKNOWN) for bad arguments.

    Every command and subcommand takes ``--server NAME``, so that it may come before or
    after the command's name; unset, it leaves ``args.server`` alone (``$POWROPS_SERVER``,
    else the configuration's only server, applies).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--server",
            metavar="NAME",
            default=argparse.SUPPRESS,
            help="the configured server to act on (default $POWROPS_SERVER, else the only one)",
        )

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"powrops: error: {message}\n")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of this run: ``--config``, else ``$POWROPS_CONFIG``, else the defaults."""
    from powrops.config import load_settings

    return load_settings(getattr(args, "config", None), server=getattr(args, "server", None))


def warn_archive_spec(settings: Settings) -> None:
    """Say, on stderr, when the embedded cluster's archive spec sends WAL to another
    repository than ``settings`` name (what ``alerts`` and readiness report as a finding)."""
    from powrops.pg.embedded import archive_warning

    line = archive_warning(settings)
    if line is not None:
        print(f"powrops: warning: {line}", file=sys.stderr)


def add_parameter_option(parser: argparse.ArgumentParser) -> None:
    """``-p KEY VALUE`` (repeatable): a notebook parameter, as ``report run`` and ``runbook``
    take them."""
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="set parameter KEY to VALUE (typed as the parameter's default)",
    )


def check_parameters(params: Mapping[str, Any], loaded: Settings | None = None) -> None:
    """Check the values of ``-p`` parameters (names and types checked, values converted) as
    their notebook checks them, so that a bad one is refused before anything is written:
    ``report run`` and ``runbook`` both hand this to the runner's parameter check. Each value
    goes through the feature's own check (a look-back window, a target time, a GDPR request's
    subject, ...); a ParameterError names the parameter, as ``-p`` and the notebook do. Empty
    values are the notebook's to judge (an empty ``target_time`` is the end of the WAL).
    With ``loaded``, the command's settings, the parameters judged against them are checked
    too (:data:`_AGAINST_SETTINGS`: ``config_path``, a review's ``servers``)."""
    if loaded is not None:
        for name, against in _AGAINST_SETTINGS.items():
            against(params.get(name), loaded)
    for name, value in params.items():
        check = _VALUE_CHECKS.get(name)
        if check is None or value is None or value == "":
            continue
        try:
            check(name, value)
        except ParameterError as exc:
            raise ParameterError(exc.in_notebook(), parameter=name) from None
    _one_target(params)


def check_config_path(value: Any, loaded: Settings) -> None:
    """A ``config_path`` parameter names the file the command loaded, by its absolute path,
    or nothing: the kernel is handed the command's configuration (``config.handoff_env``),
    and a notebook that loaded another would act on a server that the page's header, the
    result and the archive it is filed in do not name."""
    if value in (None, ""):
        return
    path = Path(str(value))
    if (
        loaded.config_file
        and path.is_absolute()
        and path.resolve() == Path(loaded.config_file).resolve()
    ):
        return
    raise ParameterError(
        f"config_path {str(value)!r}: the notebook acts on the configuration this command "
        f"loaded ({loaded.source}); to act on another, name it with -c (--config) instead",
        parameter="config_path",
    )


def _servers(value: Any, loaded: Settings) -> None:
    """A review's ``servers`` names configured servers (or "all", or nothing)."""
    if value in (None, ""):
        return
    from powrops.quarterly.assessment import server_names

    server_names(loaded, value)


#: Parameters judged against the command's settings, each by its feature's own check.
_AGAINST_SETTINGS: dict[str, Callable[[Any, Settings], None]] = {
    "config_path": check_config_path,
    "servers": _servers,
}


def _days(name: str, value: Any) -> None:
    from powrops.integrity.timeline import days_back

    days_back(value, name)


def _positive(name: str, value: Any) -> None:
    from powrops.counts import check_positive

    check_positive(name, value)


def _target(name: str, value: Any) -> None:
    from powrops.restore import RecoveryTarget

    future = RecoveryTarget("time" if name == "target_time" else "lsn", str(value)).not_yet()
    if future is not None:  # no WAL after it exists yet: the restore would refuse it
        raise future


def _one_target(params: Mapping[str, Any]) -> None:
    """A restore's parameters name one recovery target at most, as its notebook requires."""
    time, lsn = params.get("target_time") or None, params.get("target_lsn") or None
    if time is not None and lsn is not None:
        from powrops.restore import RecoveryTarget

        try:
            RecoveryTarget.from_options(time=str(time), lsn=str(lsn))
        except ParameterError as exc:
            raise ParameterError(exc.in_notebook(), parameter="target_time") from None


def _target_dir(name: str, value: Any) -> None:
    from powrops.restore import check_target_dir
    from powrops.restore.planning import given_target_dir

    path = given_target_dir(str(value))
    if path is not None:
        check_target_dir(path)


def _duration(name: str, value: Any) -> None:
    from powrops.migrate.model import Options

    Options.parse(**{name: value})


def _user_id(name: str, value: Any) -> None:
    from powrops.retention.requests import check_user_id

    check_user_id(value)


def user_id(text: str) -> int:
    """The argparse type of a user's id (``gdpr export ID``, ``archive run --user ID``): a
    value no user can have is refused in one line naming the argument, before any query."""
    from powrops.retention.subject import is_user_id, not_a_user_id

    value = int(text)  # not a number: argparse says "invalid user_id value"
    if not is_user_id(value):
        raise argparse.ArgumentTypeError(not_a_user_id(text))
    return value


def _action(name: str, value: Any) -> None:
    from powrops.retention.requests import check_action

    check_action(value)


def _quarter(name: str, value: Any) -> None:
    from powrops.quarterly.assessment import parse_quarter

    parse_quarter(value)


#: The notebooks' parameters whose values a feature checks (each by its notebook's check).
_VALUE_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "since_days": _days,
    "trend_days": _days,
    "audit_days": _days,
    "horizon_days": _positive,
    "limit": _positive,
    "recent_runs": _positive,
    "target_time": _target,
    "target_lsn": _target,
    "target_dir": _target_dir,
    "max_backup_age": _duration,
    "max_transaction_age": _duration,
    "lock_timeout": _duration,
    "statement_timeout": _duration,
    "user_id": _user_id,
    "action": _action,
    "quarter": _quarter,
}


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
