"""Team notification channels."""

from __future__ import annotations

from typing import Literal

from powrops.config.base import (
    Section,
)
from powrops.config.model import (
    SecretStr,
    model_validator,
)


class NotifyChannel(Section):
    kind: Literal["log", "webhook", "command", "email"]
    url: SecretStr | None = None
    command: str | None = None
    # email: through the local MTA's sendmail interface (sendmail -t -oi)
    to: tuple[str, ...] = ()
    sender: str = "powrops@localhost"
    sendmail: str = "/usr/sbin/sendmail"

    @model_validator(mode="after")
    def _target(self) -> NotifyChannel:
        if self.kind == "webhook" and self.url is None:
            raise ValueError("a webhook channel needs url")
        if self.kind == "command" and not self.command:
            raise ValueError("a command channel needs command")
        if self.kind == "email" and not self.to:
            raise ValueError("an email channel needs to (a list of addresses)")
        return self


class NotifySettings(Section):
    channels: tuple[NotifyChannel, ...] = (NotifyChannel(kind="log"),)
