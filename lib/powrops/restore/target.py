"""Where recovery stops: the recovery target, parsed and normalised from command-line
options, and the recovery settings it writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from powrops.backup.wal.positions import format_lsn, parse_lsn
from powrops.errors import ParameterError

TargetKind = Literal["latest", "time", "lsn", "xid", "name", "immediate"]

OPTION = {
    "time": "--target-time",
    "lsn": "--target-lsn",
    "xid": "--target-xid",
    "name": "--target-name",
    "immediate": "--immediate",
    "latest": "(no target)",
}
#: The runbooks' parameters for the same targets (point_in_time_restore, recovery_drill).
PARAMETER = {"time": "target_time", "lsn": "target_lsn"}


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery stops: the end of the archive (latest), a time, LSN, xid, restore point
    name, or the first consistent point of the backup (immediate). Values are validated and
    normalised on creation; a bad one is a ParameterError naming the command-line option and,
    in a notebook, the runbook's parameter."""

    kind: TargetKind
    value: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in OPTION:
            raise ParameterError(f"unknown recovery target kind {self.kind!r}")
        names = _names(self.kind)
        if self.kind in ("latest", "immediate"):
            if self.value is not None:
                raise ParameterError("{name} takes no value", **names)
            return
        text = (self.value or "").strip()
        if not text:
            raise ParameterError("{name} needs a value", **names)
        object.__setattr__(self, "value", _normalise(self.kind, text, names))

    @property
    def time(self) -> datetime:
        assert self.kind == "time" and self.value is not None
        return datetime.fromisoformat(self.value)

    @property
    def lsn(self) -> int:
        assert self.kind == "lsn" and self.value is not None
        return parse_lsn(self.value)

    def not_yet(self, now: datetime | None = None) -> ParameterError | None:
        """The error for a time target not reached yet (it lies after ``now``), naming the
        option and the parameter as the target's other errors do, or None: no WAL written
        after it exists to replay, whatever is archived or switched."""
        moment = now or datetime.now(UTC)
        if self.kind != "time" or self.time <= moment:
            return None
        return ParameterError(
            f"{{name}} {self.value} is in the future (now {moment:%Y-%m-%d %H:%M:%S %Z}): "
            "recovery reaches only a time already written; give a past time, or none for the "
            "end of the archived WAL",
            **_names(self.kind),
        )

    def describe(self) -> str:
        if self.kind == "latest":
            return "the end of the archived WAL (latest)"
        if self.kind == "immediate":
            return "the backup's consistency point (immediate)"
        return f"recovery target {self.kind} {self.value}"

    def settings(self) -> dict[str, str]:
        """The recovery target settings for postgresql.auto.conf (none for latest)."""
        if self.kind == "latest":
            return {}
        if self.kind == "immediate":
            found = {"recovery_target": "immediate"}
        else:
            found = {f"recovery_target_{self.kind}": str(self.value)}
        return {**found, "recovery_target_action": "promote"}

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_options(
        cls,
        *,
        time: str | None = None,
        lsn: str | None = None,
        xid: str | None = None,
        name: str | None = None,
        immediate: bool = False,
    ) -> RecoveryTarget:
        """The target from command-line options, at most one of which is set."""
        options: list[tuple[TargetKind, str | None]] = [
            ("time", time), ("lsn", lsn), ("xid", xid), ("name", name),
        ]  # fmt: skip
        given: list[tuple[TargetKind, str | None]] = [
            (kind, value) for kind, value in options if value is not None
        ]
        if immediate:
            given.append(("immediate", None))
        if len(given) > 1:
            raise ParameterError(
                "choose one recovery target: {name}",
                option=", ".join(OPTION[k] for k, _ in given),
                parameter=", ".join(PARAMETER.get(k, OPTION[k]) for k, _ in given),
            )
        return cls(*given[0]) if given else cls("latest")


def _names(kind: str) -> dict[str, str | None]:
    """The option and the parameter a target of ``kind`` is given by, for its errors."""
    return {"option": OPTION[kind], "parameter": PARAMETER.get(kind)}


def _normalise(kind: str, text: str, names: dict[str, str | None]) -> str:
    if kind == "time":
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ParameterError(
                f"{{name}}: {text!r} is not an ISO-8601 time (e.g. 2026-11-26T06:15:00+00:00; "
                "without a zone it is UTC)",
                **names,
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(sep=" ")
    if kind == "lsn":
        try:
            return format_lsn(parse_lsn(text))
        except ValueError:
            message = f"{{name}}: {text!r} is not an LSN (X/Y in hex)"
            raise ParameterError(message, **names) from None
    if kind == "xid":
        if not text.isdigit() or int(text) < 3 or int(text) >= 2**64:
            raise ParameterError(
                f"{{name}}: {text!r} is not a transaction id (an integer >= 3)", **names
            )
        return str(int(text))
    if len(text) > 63 or "'" in text:
        raise ParameterError(
            f"{{name}}: {text!r} is not a restore point name (<= 63 chars, no ')", **names
        )
    return text


LATEST = RecoveryTarget("latest")  # the default target: the end of the archived WAL
