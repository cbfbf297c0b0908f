"""The steps of a procedure, each timed and reported (the strategy's pre / during / post)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from powrops.findings import Severity

StepStatus = Literal["ok", "warning", "failed", "skipped"]
log = logging.getLogger("powrops.backup")


@dataclass
class Step:
    phase: str
    name: str
    status: StepStatus = "ok"
    message: str = ""
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StepFailed(Exception):
    """Raised inside a step to mark it failed with a message."""


@dataclass
class Procedure:
    """Collects the steps of one run and prints each as it finishes."""

    echo: Callable[[str], None] | None = None
    steps: list[Step] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, phase: str, name: str) -> Iterator[Step]:
        step = Step(phase, name)
        started = time.monotonic()
        try:
            yield step
        except BaseException as exc:
            step.status = "failed"
            step.message = step.message or str(exc)
            raise
        finally:
            step.seconds = round(time.monotonic() - started, 3)
            self.steps.append(step)
            self._report(step)

    def skip(self, phase: str, name: str, reason: str) -> None:
        step = Step(phase, name, "skipped", reason)
        self.steps.append(step)
        self._report(step)

    def _report(self, step: Step) -> None:
        line = (
            f"{step.phase:6} {step.name:18} {step.status.upper():8} {step.seconds:7.2f}s  "
            f"{step.message}"
        )
        log.info(line)
        if self.echo:
            self.echo(line)

    @property
    def severity(self) -> Severity:
        statuses = {s.status for s in self.steps}
        if "failed" in statuses:
            return Severity.CRITICAL
        if "warning" in statuses:
            return Severity.WARNING
        return Severity.OK
