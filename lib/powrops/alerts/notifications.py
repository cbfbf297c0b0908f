"""``powrops alerts --notify``: page once per change, say when it is resolved, remind while
it stays critical.

A finding is known by its check and object (``wraparound`` of database ``powr``,
``blocked`` pid 4711). The state (``alert_state`` name ``notify``) keeps every finding that
is not OK with the severity last sent and when. Each run sends, through ``notify.channels``:

* a message when a finding's severity differs from the one last sent (a new problem, a
  WARNING turning CRITICAL, a CRITICAL easing to WARNING);
* a "resolved" message when a finding that was not OK is OK or gone;
* a reminder when a finding has stayed CRITICAL for ``alerts.notify.remind_every`` since the
  last message ("indefinite": never).

A message that no channel could take is not marked sent: the next run tries again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from powrops.durations import Duration
from powrops.findings import Finding, Severity
from powrops.notify import Event

STATE_NAME = "notify"
KIND = "alerts"


def _key(finding: Finding) -> str:
    return f"{finding.check}|{finding.object or ''}"


@dataclass(frozen=True)
class Change:
    key: str
    event: Event
    entry: dict[str, Any] | None  # the state entry once sent (None: drop the key)


def changes(
    findings: Iterable[Finding],
    previous: dict[str, Any],
    now: datetime,
    remind_every: Duration,
    ignore: Iterable[str] = (),
) -> list[Change]:
    """What to send now, given the findings and the state of the previous runs."""
    skip = set(ignore)
    current: dict[str, Finding] = {}
    for finding in findings:
        if finding.check in skip:
            continue
        key = _key(finding)
        if key not in current or finding.severity.rank > current[key].severity.rank:
            current[key] = finding
    sent: dict[str, Any] = previous.get("findings", {})
    out: list[Change] = []
    for key, finding in current.items():
        before = sent.get(key)
        name = f"{finding.check} {finding.object}" if finding.object else finding.check
        details = {"check": finding.check, "object": finding.object,
                   "value": finding.value, "advice": finding.advice}  # fmt: skip
        if finding.severity == Severity.OK:
            continue
        entry = {"severity": finding.severity.name, "sent_at": now.isoformat(),
                 "since": before["since"] if before else now.isoformat(),
                 "message": finding.message}  # fmt: skip
        if before is None or before["severity"] != finding.severity.name:
            was = f" (was {before['severity']})" if before else ""
            event = Event(KIND, f"{finding.severity.name}{was}: {name}: {finding.message}",
                          finding.severity.name, {**details, "previous": before and
                                                  before["severity"]}, now)  # fmt: skip
            entry["since"] = now.isoformat()
            out.append(Change(key, event, entry))
        elif finding.severity == Severity.CRITICAL and remind_every.seconds is not None:
            last = datetime.fromisoformat(before["sent_at"])
            if (now - last).total_seconds() >= remind_every.seconds:
                event = Event(KIND, f"still CRITICAL since {before['since']}: {name}: "
                              f"{finding.message}", "CRITICAL",
                              {**details, "reminder": True}, now)  # fmt: skip
                out.append(Change(key, event, entry))
    for key, before in sent.items():
        finding_now = current.get(key)
        if finding_now is not None and finding_now.severity != Severity.OK:
            continue
        check, _, obj = key.partition("|")
        name = f"{check} {obj}" if obj else check
        event = Event(KIND, f"resolved: {name} (was {before['severity']}: {before['message']})",
                      "OK", {"check": check, "object": obj or None, "resolved": True,
                             "previous": before["severity"]}, now)  # fmt: skip
        out.append(Change(key, event, None))
    return out


def apply(previous: dict[str, Any], delivered: Iterable[Change]) -> dict[str, Any]:
    """The state after the delivered changes (undelivered ones are tried again next run)."""
    findings = dict(previous.get("findings", {}))
    for change in delivered:
        if change.entry is None:
            findings.pop(change.key, None)
        else:
            findings[change.key] = change.entry
    return {"findings": findings}
