"""Team notifications, pluggable: log, webhook URL, command, e-mail (the local sendmail).

The strategy's backup procedure notifies the team before a backup, and repairs notify for
manual review. A notification that cannot be delivered is reported by the caller as a warning;
it never fails the work it reports on.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from powrops.config import NotifyChannel

log = logging.getLogger("powrops.notify")


@dataclass(frozen=True)
class Event:
    """Something the team should hear about."""

    kind: str
    message: str
    severity: str = "OK"
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "severity": self.severity,
            "details": self.details,
            "at": self.at.isoformat(),
            "source": "powrops",
        }


def _send_log(channel: NotifyChannel, event: Event) -> None:
    log.info("notify %s [%s]: %s", event.kind, event.severity, event.message)


def _send_webhook(channel: NotifyChannel, event: Event) -> None:
    assert channel.url is not None
    body = json.dumps(event.to_dict()).encode()
    request = urllib.request.Request(
        channel.url.get_secret_value(),
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": "powrops"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status >= 300:
            raise OSError(f"webhook answered HTTP {response.status}")


def _send_command(channel: NotifyChannel, event: Event) -> None:
    assert channel.command is not None
    env_event = json.dumps(event.to_dict())
    _pipe(shlex.split(channel.command), env_event, "command")


def _send_email(channel: NotifyChannel, event: Event) -> None:
    """One mail per event through ``sendmail -t -oi`` (the local MTA queues and delivers)."""
    message = EmailMessage()
    first = event.message.splitlines()[0] if event.message else event.kind
    message["Subject"] = f"[powrops] {event.severity} {event.kind}: {first[:120]}"
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message.set_content(
        f"{event.message}\n\n{json.dumps(event.to_dict(), indent=2, default=str)}\n"
    )
    _pipe([channel.sendmail, "-t", "-oi"], message.as_string(), "sendmail")


def _pipe(argv: list[str], text: str, what: str) -> None:
    """Run ``argv`` with ``text`` on its standard input; OSError when it fails."""
    proc = subprocess.run(argv, input=text, text=True, capture_output=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise OSError(f"{what} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")


SENDERS = {
    "log": _send_log,
    "webhook": _send_webhook,
    "command": _send_command,
    "email": _send_email,
}


def notify(channels: Sequence[NotifyChannel], event: Event) -> list[str]:
    """Deliver ``event`` on every channel; returns the problems (empty when all delivered)."""
    problems: list[str] = []
    for channel in channels:
        try:
            SENDERS[channel.kind](channel, event)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            # The message names the channel kind only: a webhook URL may carry a token.
            problems.append(f"{channel.kind} notification failed: {exc}")
    return problems
