"""Showing settings: secrets masked, TOML out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from powrops.config.model import (
    Model,
    SecretStr,
)
from powrops.config.settings import Settings
from powrops.durations import Duration, Size

REDACTED = "********"


def redacted_dict(settings: Settings) -> dict[str, Any]:
    """Settings as plain data, every secret replaced by a fixed mask."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return REDACTED if value.get_secret_value() else ""
        if isinstance(value, Model):
            return {
                (field.alias or name): walk(getattr(value, name))
                for name, field in type(value).model_fields.items()
                if not field.exclude
            }
        if isinstance(value, (tuple, list)):
            return [walk(v) for v in value]
        if isinstance(value, (Duration, Size)):
            return str(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    result: dict[str, Any] = walk(settings)
    return result


def secret_values(settings: Settings) -> list[str]:
    """Every secret's plain value (for redacting rendered output)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if secret:
                found.append(secret)
        elif isinstance(value, Model):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)

    walk(settings)
    return found


def to_toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for settings (scalars, lists, nested tables)."""
    lines: list[str] = []

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        if isinstance(value, Mapping):
            return (
                "{ "
                + ", ".join(f"{k} = {scalar(v)}" for k, v in value.items() if v is not None)
                + " }"
            )
        raise TypeError(f"cannot write {type(value).__name__} as TOML")

    def table(prefix: str, node: Mapping[str, Any]) -> None:
        simple = {k: v for k, v in node.items() if not isinstance(v, Mapping)}
        nested = {k: v for k, v in node.items() if isinstance(v, Mapping)}
        if prefix and simple:
            lines.append(f"\n[{prefix}]")
        for key, value in simple.items():
            if value is None:
                lines.append(f"# {key} is not set")
            else:
                lines.append(f"{key} = {scalar(value)}")
        for key, value in nested.items():
            table(f"{prefix}.{key}" if prefix else key, value)

    table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"
