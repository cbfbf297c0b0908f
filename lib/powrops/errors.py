"""One exception root for powrops, with a base per area.

Every error carries the exit code a scheduler should see. Anything that stops a command
before it could judge the system is UNKNOWN (3) under the monitoring convention.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK = 0
EXIT_WARNING = 1
EXIT_CRITICAL = 2
EXIT_UNKNOWN = 3
#: ``wal fetch``'s error code: PostgreSQL ends recovery on 1-125, so a failure answers 128.
EXIT_WAL_FETCH_ERROR = 128


class PowropsError(Exception):
    """Root of every error powrops raises on purpose."""

    exit_code: int = EXIT_UNKNOWN

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: the run stops at once (exit 3, UNKNOWN: it did not finish).

    Not a PowropsError, nor an Exception: no ``except Exception`` swallows it. Each holder of
    a resource (a started server, a directory being written, a repository lock) releases it
    on the way out and adds what it left with :meth:`leaving`; the command prints one line.
    """

    def __init__(self, signal: str = "SIGINT") -> None:
        super().__init__(signal)
        self.signal = signal
        self.left: list[str] = []

    @classmethod
    def of(cls, exc: KeyboardInterrupt) -> Interrupted:
        """``exc`` itself, or (a plain KeyboardInterrupt: Ctrl-C in a notebook) an
        Interrupted standing for it."""
        return exc if isinstance(exc, Interrupted) else cls()

    def leaving(self, what: str) -> Interrupted:
        """Add what the holder left behind (outermost last); returns self, to raise."""
        self.left.append(what)
        return self

    def __str__(self) -> str:
        return f"interrupted by {self.signal}" + (": " + "; ".join(self.left) if self.left else "")


@contextmanager
def interrupts_held(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[list[str]]:
    """``signals`` held while the block writes what must not be left half written (a run's
    archive: its notebook without its page and result), their names listed for the caller
    to act on after it. Only in the main thread, where Python runs signal handlers."""
    held: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {s: signal.signal(s, lambda n, frame: held.append(signal.Signals(n).name))
                for s in signals}  # fmt: skip
    try:
        yield held
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def show_in_notebooks() -> None:
    """In a Jupyter or IPython kernel, show a :class:`PowropsError` (an expected condition: a
    parameter to set, a target no backup reaches), and a database's answer a DBA can act on
    (:func:`database_problem`: a schema not migrated, a missing grant), a name a cell uses
    before the cell above that sets it ran (:func:`unset_name`: cells run out of order), and
    an interrupt (:func:`interrupted_text`: the Stop button) as its one message, not a
    traceback; the cell still fails, so the run stops there (under papermill the report is
    archived as failed, UNKNOWN, with that message). Any other error keeps its traceback.
    Nothing happens outside IPython; installing twice is harmless."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shown = (PowropsError, NameError, KeyboardInterrupt, *_database_errors())
        shell.set_custom_exc(shown, _one_message)


def _database_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.Error,)


def _one_message(
    shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None
) -> list[str] | None:
    """IPython's custom exception handler: the message alone, shown as the cell's error; a
    database error that is not the database's answer to act on gets the usual traceback."""
    said = (
        interrupted_text(value)
        if isinstance(value, KeyboardInterrupt)
        else unset_name(value, tb, shell.user_ns)
        if isinstance(value, NameError)
        else notebook_text(value)
        if isinstance(value, PowropsError)
        else database_problem(value)
    )
    if said is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None
    stb = [f"Stopped: {said}"]
    # the cell's error (its evalue, what papermill and the archive keep) says it the same way
    shown = _saying(value, said)
    shell._showtraceback(etype, shown, stb)
    return stb


def interrupted_text(error: KeyboardInterrupt) -> str:
    """A cell stopped by Kernel > Interrupt (JupyterLab's Stop button: SIGINT), in one line:
    what each holder of a resource left (:class:`Interrupted`), and that the cell did not
    finish."""
    return f"{Interrupted.of(error)}; this cell did not finish: run it again to do it"


def unset_name(error: NameError, tb: Any, namespace: dict[str, Any]) -> str | None:
    """A name the cell's own code used before the cell above that sets it ran (a DBA ran a
    cell of a runbook out of order), in one line with what to do; None for a NameError raised
    inside a function (a defect: its traceback stays)."""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame if tb is not None else None
    if frame is None or frame.f_code.co_name != "<module>" or frame.f_globals is not namespace:
        return None
    return (
        f"{error.name} is not set yet: a cell above this one sets it. Run the cells above "
        "first (Run > Run All Above Selected Cell), then this one again"
    )


def _saying(value: BaseException, said: str) -> BaseException:
    """The error as the cell's error keeps it: saying ``said`` (the parameter named, the
    database's answer with what to do), of the same type where it can be made again."""
    if said == str(value):
        return value
    if isinstance(value, ParameterError):
        return ParameterError(said)
    if isinstance(value, KeyboardInterrupt):  # Interrupted takes a signal's name
        return KeyboardInterrupt(said)
    try:
        return type(value)(said)
    except Exception:  # a type that takes other arguments keeps its own words
        return value


def notebook_text(error: BaseException) -> str:
    """An error as a notebook shows it: a :class:`ParameterError` names the parameter, a
    database's answer a DBA can act on says what to do (:func:`database_problem`), an
    interrupt and a name not set yet say so (:func:`interrupted_text`, :func:`unset_name`)."""
    if isinstance(error, ParameterError):
        return error.in_notebook()
    if isinstance(error, KeyboardInterrupt):
        return interrupted_text(error)
    if isinstance(error, NameError):
        return _unset_in_shell(error) or str(error)
    return database_problem(error) or str(error)


def _unset_in_shell(error: NameError) -> str | None:
    """:func:`unset_name` for an error of the IPython kernel this runs in (None outside one)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return None if shell is None else unset_name(error, error.__traceback__, shell.user_ns)


#: Exit statuses of a child killed by the same Ctrl-C or SIGTERM as powrops: an interrupt,
#: not a failure of the program (negative: a signal; 128 + n: a shell's way of saying so).
INTERRUPTED_CHILD = frozenset({-2, -15, 130, 143})


_MIGRATE = "is the schema migrated? (powrops migrate latest)"
_SHUT_DOWN = "the server shut down or restarted meanwhile"

#: What a database error means to whoever runs the command, by SQLSTATE (or its class of two
#: characters): what a DBA meets by pointing powrops at a database it does not expect, or
#: with a role that lacks a grant, rather than a defect of powrops.
_DATABASE_ADVICE = {
    "42P01": _MIGRATE,  # undefined_table
    "42703": _MIGRATE,  # undefined_column
    "42883": _MIGRATE,  # undefined_function
    "3F000": _MIGRATE,  # invalid_schema_name
    "42501": "the role powrops connects as lacks a privilege this needs: grant it, "
    "or connect as a role that has it",
    "25006": "the database is read-only (a standby, or default_transaction_read_only on): "
    "this writes",
    "57P01": _SHUT_DOWN,
    "57P02": _SHUT_DOWN,
    "57P03": "the server is starting or shutting down: try again once it accepts connections",
    "08": "the connection to the database failed",
    "53": "the server ran out of a resource (disk, memory or connections)",
}


def database_problem(exc: BaseException) -> str | None:
    """A database error whoever runs the command can act on, in one line with what to do;
    None for anything else (a defect, reported as one). Read from the error's SQLSTATE, so
    that psycopg need not be imported to ask; a connection lost without one is said too."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str):
        advice = _DATABASE_ADVICE.get(state) or _DATABASE_ADVICE.get(state[:2])
    elif any(c.__name__ == "OperationalError" for c in type(exc).__mro__):
        advice = _DATABASE_ADVICE["08"]
    else:
        advice = None
    if advice is None or not type(exc).__module__.startswith("psycopg"):
        return None
    lines = str(exc).strip().splitlines()
    return f"{lines[0] if lines else type(exc).__name__}; {advice}"


def database_message(exc: BaseException) -> str:
    """A database error in one line: :func:`database_problem`'s words where it knows what to
    do, else the error's first line."""
    lines = str(exc).strip().splitlines()
    return database_problem(exc) or (lines[0] if lines else type(exc).__name__)


def one_line(text: str) -> str:
    """libpq's several lines (a refused connection's hint, FATAL and DETAIL) on one line."""
    return " ".join(text.split())


class ConfigError(PowropsError):
    """The configuration file, an environment override or a value in it is wrong."""

    def __init__(self, message: str, problems: list[str] | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class ParameterError(PowropsError):
    """A command-line argument or notebook parameter is wrong.

    A value that a command takes as an option and a notebook as a parameter (a restore's
    target time: ``--target-time``, ``target_time``) is checked by one library function,
    which cannot know who gave it: its message says ``{name}`` where the value's name goes,
    and the error carries both names. The command line shows the option (``str``), a
    notebook the parameter (:meth:`in_notebook`, what :func:`show_in_notebooks` shows).
    """

    NAME = "{name}"

    def __init__(
        self,
        message: str,
        *,
        parameter: str | None = None,
        option: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, parameter=parameter, **details)
        self.parameter = parameter
        self.option = option

    def __str__(self) -> str:
        return self._named(self.option or self.parameter)

    def in_notebook(self) -> str:
        """The message naming the notebook's parameter (the option where there is none)."""
        return self._named(self.parameter or self.option)

    def _named(self, name: str | None) -> str:
        return self.message.replace(self.NAME, name) if name else self.message


class BinariesError(PowropsError):
    """PostgreSQL programs are missing or of the wrong major version."""


class ClusterError(PowropsError):
    """The local PostgreSQL cluster could not be created, started or stopped."""


class DatabaseError(PowropsError):
    """The database could not be reached or a query failed."""


class MigrationError(PowropsError):
    """A schema migration could not be applied or rolled back."""


class SeedError(PowropsError):
    """Demo data could not be generated or loaded."""


class ReportError(PowropsError):
    """A report could not be found, run, rendered or archived."""


class StorageError(PowropsError):
    """A backup repository could not be opened, read or written."""


class ObjectNotFound(StorageError):
    """The object does not exist in the repository."""


class ObjectExists(StorageError):
    """A write that must not replace an object found the object already there."""


class StorageUnreachable(StorageError):
    """The repository's endpoint did not answer (connection refused, timeout, DNS)."""


class DecryptionError(StorageError):
    """An object could not be decrypted: wrong key, not encrypted, modified or truncated."""


class EncryptionKeyError(StorageError):
    """The client-side encryption key could not be loaded."""


class BackupError(PowropsError):
    """A backup, WAL archive operation or expiry could not be carried out."""


class BackupFailed(BackupError):
    """A backup run started and failed; its failure is recorded in the catalog."""

    exit_code = EXIT_CRITICAL


class BackupUnsupported(BackupError):
    """The server cannot take this kind of backup (an incremental before PostgreSQL 17).

    Refused before anything starts, so no failed run is recorded: the command could not
    judge, exit 3."""


class LockError(BackupError):
    """Another backup holds the repository's lock."""


class WalConflict(BackupError):
    """A WAL file of the same name but different content is already archived."""
