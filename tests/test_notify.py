"""Team notifications over real channels: a local webhook server and a command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from powrops.config import NotifyChannel
from powrops.notify import Event, notify


def test_webhook_and_command_receive_the_event(
    webhook: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, received = webhook
    out = tmp_path / "event.json"
    command = f"{sys.executable} -c \"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())\""
    channels = [
        NotifyChannel(kind="log"),
        NotifyChannel.model_validate({"kind": "webhook", "url": f"{url}/ok"}),
        NotifyChannel(kind="command", command=command),
    ]
    problems = notify(
        channels, Event("backup_started", "full backup starting", details={"label": "x"})
    )
    assert problems == []
    assert received[0]["kind"] == "backup_started" and received[0]["details"] == {"label": "x"}
    assert json.loads(out.read_text())["message"] == "full backup starting"


def test_failing_channels_are_reported_not_raised(
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, _ = webhook
    channels = [
        NotifyChannel.model_validate({"kind": "webhook", "url": f"{url}/broken?token=SECRET"}),
        NotifyChannel(kind="command", command="false"),
        NotifyChannel.model_validate({"kind": "webhook", "url": "http://127.0.0.1:1/x"}),
    ]
    problems = notify(channels, Event("backup_failed", "boom", "CRITICAL"))
    assert len(problems) == 3
    assert problems[0].startswith("webhook notification failed") and "SECRET" not in problems[0]
    assert "command exited 1" in problems[1]


def test_email_goes_through_sendmail(tmp_path: Path) -> None:
    out = tmp_path / "mail.txt"
    sendmail = tmp_path / "sendmail"
    sendmail.write_text(f"#!{sys.executable}\nimport sys\n"
                        f"open({str(out)!r}, 'w').write(' '.join(sys.argv[1:]) + '\\n' "
                        "+ sys.stdin.read())\n")  # fmt: skip
    sendmail.chmod(0o755)
    channel = NotifyChannel.model_validate(
        {
            "kind": "email",
            "to": ["dba@example.invalid", "ops@example.invalid"],
            "sendmail": str(sendmail),
        }
    )
    assert notify([channel], Event("alerts", "CRITICAL: wal_size: big", "CRITICAL")) == []
    args, mail = out.read_text().split("\n", 1)
    assert args == "-t -oi"
    assert "To: dba@example.invalid, ops@example.invalid" in mail
    assert "Subject: [powrops] CRITICAL alerts: CRITICAL: wal_size: big" in mail
    broken = channel.model_copy(update={"sendmail": "/bin/false"})
    assert notify([broken], Event("alerts", "x"))[0].startswith("email notification failed")
    with pytest.raises(ValueError, match="needs to"):
        NotifyChannel.model_validate({"kind": "email"})
