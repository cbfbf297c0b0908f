"""Loading: the config file search, environment overrides, validation and the servers of a fleet."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from powrops.config.base import (
    BASE_DIR_ENV,
    CONFIG_ENV,
    DEFAULT_FILE,
    DEFAULT_SERVER,
    ENV_PREFIX,
    ENV_SHORTCUTS,
    SERVER_ENV,
)
from powrops.config.model import (
    Model,
    SecretStr,
    ValidationError,
)
from powrops.config.settings import Settings
from powrops.config.show import REDACTED
from powrops.errors import ConfigError, show_in_notebooks


def config_path(
    explicit: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The config file to read, or None for the strategy's defaults.

    ``--config``, else ``$POWROPS_CONFIG``, else none when ``$POWROPS_BASE_DIR`` says that
    the powrops which started this process loaded none (:func:`handoff_env`), else the
    nearest ``powrops.toml`` in the working directory or a folder above it, so that a
    notebook opened by hand in ``runbooks/`` finds the project's file.

    A relative path is made absolute without its ``..`` (``os.path.abspath``): the folders
    it names are written into the archive spec and the server's ``archive_command``, and
    compared with them, in the same words whichever folder the command ran in.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return Path(os.path.abspath(explicit))
    if env.get(CONFIG_ENV):
        return Path(os.path.abspath(env[CONFIG_ENV]))
    if env.get(BASE_DIR_ENV):
        return None
    start = (cwd or Path.cwd()).absolute()
    for folder in (start, *start.parents):
        if (folder / DEFAULT_FILE).is_file():
            return folder / DEFAULT_FILE
    return None


def project_root(cwd: Path | None = None) -> Path:
    """Where relative paths resolve when there is no config file: the nearest folder at or
    above the working directory holding a ``.powrops`` state directory or a powrops checkout
    (``pyproject.toml`` beside ``runbooks/``); else the working directory itself."""
    start = (cwd or Path.cwd()).absolute()
    for folder in (start, *start.parents):
        if (folder / ".powrops").is_dir():
            return folder
        if (folder / "pyproject.toml").is_file() and (folder / "runbooks").is_dir():
            return folder
    return start


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested settings from ``POWROPS__A__B=value`` variables and the shortcuts."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if name in ENV_SHORTCUTS:
            path: tuple[str, ...] = ENV_SHORTCUTS[name]
        elif name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        else:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        node[path[-1]] = value
    return tree


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``, nested tables merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        return (
            f"{key}: unknown key (value {value!r}); "
            "check the spelling against `powrops config show`"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        shown = "<missing>"
    elif isinstance(value, Mapping):
        shown = "{...}"
    elif _is_secret(error["loc"]):
        shown = REDACTED  # a URL's password, a key: never in an error a cron mail carries
    else:
        shown = repr(value)
    return f"{key} = {shown}: {message}"


def _is_secret(loc: Sequence[str | int]) -> bool:
    """Whether ``loc`` names a secret (a ``SecretStr`` setting) of :class:`Settings`."""
    kinds: list[Any] = [Settings]
    for part in loc:
        fields = [
            kind.model_fields[part]
            for kind in kinds
            if isinstance(kind, type) and issubclass(kind, Model) and part in kind.model_fields
        ]
        if fields:  # else a list index: the same models go on
            kinds = _types_in([field.annotation for field in fields])
    return SecretStr in kinds


def _types_in(annotations: Iterable[Any]) -> list[Any]:
    """The classes an annotation names, through unions, tuples and ``Annotated``."""
    found: list[Any] = []
    for annotation in annotations:
        args = get_args(annotation)
        found.extend(_types_in(args) if args else [annotation])
    return found


def validate(
    data: Mapping[str, Any], source: str | None = None, base_dir: Path | None = None
) -> Settings:
    """Settings from a nested mapping, or ConfigError listing every problem by dotted key.

    The mapping is laid over the defaults first, so a file that sets only
    ``alerts.disk_usage.warning`` keeps the default critical threshold. Relative ``file://``
    repository URLs and the encryption ``key_file`` resolve against ``base_dir`` here, once,
    so every reader (the server's archive command too) gets them absolute.
    """
    defaults = Settings().model_dump(by_alias=True, exclude={"source", "base_dir"})
    folder = str(base_dir) if base_dir is not None else None
    try:
        return Settings.model_validate(
            {**merge(defaults, data), "source": source, "base_dir": folder},
            context={"base_dir": folder},
        )
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        where = f" in {source}" if source else ""
        raise ConfigError(f"invalid configuration{where}", problems=problems) from None


def server_tables(data: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """The ``[servers.<name>]`` tables of a configuration, checked: name -> overrides."""
    tables = data.get("servers")
    if tables is None:
        return {}
    where = f" in {source}" if source else ""
    if not isinstance(tables, Mapping) or not tables:
        raise ConfigError(
            f"invalid configuration{where}",
            problems=["servers: expected tables [servers.<name>.<section>]"],
        )
    problems = []
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            problems.append(f"servers.{name}: expected a table of sections")
        if name == DEFAULT_SERVER or not _SERVER_NAME.fullmatch(name):
            problems.append(
                f"servers.{name}: a server name is letters, digits, '-' and '_', starts with a "
                f"letter and is not {DEFAULT_SERVER!r}"
            )
    if problems:
        raise ConfigError(f"invalid configuration{where}", problems=problems)
    return dict(tables)


_SERVER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")


def server_names(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """The servers the configuration names, in file order; ``["default"]`` without any."""
    env = os.environ if environ is None else environ
    file = config_path(path, env)
    data = read_toml(file) if file else {}
    return list(server_tables(data, str(file) if file else None)) or [DEFAULT_SERVER]


def choose_server(names: list[str], requested: str | None) -> str:
    """The server to act on: the requested one, else the only one; ConfigError otherwise."""
    listed = ", ".join(names)
    if requested:
        if requested not in names:
            raise ConfigError(f"unknown server {requested!r}; configured servers: {listed}")
        return requested
    if len(names) == 1:
        return names[0]
    raise ConfigError(
        f"the configuration names several servers ({listed}): "
        f"pass --server NAME or set {SERVER_ENV}"
    )


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    server: str | None = None,
) -> Settings:
    """The effective settings of one server: defaults, then the config file's top level, then
    its ``[servers.<server>]`` tables, then the environment.

    The server is ``server``, else ``$POWROPS_SERVER``, else the configuration's only one.
    """
    env = os.environ if environ is None else environ
    file = config_path(path, env)
    data = read_toml(file) if file else {}
    source = str(file) if file else "defaults"
    tables = server_tables(data, source)
    names = list(tables) or [DEFAULT_SERVER]
    chosen = choose_server(names, server or env.get(SERVER_ENV) or None)
    top = {key: value for key, value in data.items() if key != "servers"}
    merged = merge(top, tables[chosen]) if tables else top
    overrides = env_overrides(env)
    if tables:
        source += f" [servers.{chosen}]"
    if overrides:
        source += " + environment"
    base_dir = file.parent if file else Path(env.get(BASE_DIR_ENV) or project_root())
    loaded = validate(merge(merged, overrides), source, base_dir)
    return loaded.model_copy(
        update={
            "server": chosen,
            "servers": tuple(names),
            "config_file": str(file) if file else None,
        }
    )


def handoff_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a process powrops starts (a report's kernel, a helper)
    load exactly ``settings``, never discover a configuration again: the file that was
    loaded, by absolute path, or, when none was, the folder its relative paths resolved
    against; and the server. Environment overrides reach the process by inheritance."""
    env = {SERVER_ENV: settings.server}
    if settings.config_file:
        env[CONFIG_ENV] = str(Path(settings.config_file).absolute())
    else:
        env[CONFIG_ENV] = ""
        env[BASE_DIR_ENV] = str(Path(settings.base_dir or project_root()).absolute())
    return env


def settings(config_path: str | Path | None = None, server: str | None = None) -> Settings:
    """The settings of a notebook or runbook run: the one entry point notebooks call.

    ``config_path`` is the notebook's ``config_path`` parameter: an empty string means "not
    given" (papermill parameters have no None), so ``$POWROPS_CONFIG`` (or the defaults
    ``$POWROPS_BASE_DIR`` names), which ``powrops report run`` sets for the kernel to the
    configuration it loaded, applies, else the usual search. The server is ``server``, else
    ``$POWROPS_SERVER`` (also set by ``powrops report run``).

    In a notebook's kernel it also makes powrops' expected errors (a parameter to set, a
    target no backup reaches) show as one message instead of a traceback
    (:func:`powrops.errors.show_in_notebooks`), from this first cell on.
    """
    show_in_notebooks()
    return load_settings(config_path or None, server=server or None)
