"""What verification has already read, kept in the repository beside the catalog.

``verification/state.json`` records, for every object read back intact, its stored size,
digest and when it was last read, for every backup when its content was checked against its
manifest, and for every incremental whose chain was combined and passed ``pg_verifybackup`` the
chain's members and the SHA-256 of their stored objects then (a later run whose reads find the
same bytes relies on it rather than combining again). The daily verification reads what is
new, what is due (not read for ``verification.reread_every``) and a rotating share of the rest,
so that its cost follows the new data while every object is still re-read within the period.
The file is written under the repository's lock, so the secondary's state and other hosts' runs
see it and do not race.

Only an object whose bytes were read back and matched in the run is recorded (the checks in
:mod:`powrops.verify.checksums` say which); one the plan chose but no check read stays as it
was. A damaged object is never recorded as read intact: it stays new, and is read again every
day until it is repaired or expired.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from powrops.errors import StorageError
from powrops.storage.base import ObjectInfo, Repository

STATE_KEY = "verification/state.json"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class ObjectRead:
    """The last intact read of one stored object."""

    size: int
    digest: str | None  # SHA-256 of the stored bytes, when the read computed it
    read_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "digest": self.digest, "read_at": self.read_at.isoformat()}


@dataclass(frozen=True)
class ChainCheck:
    """A passed ``pg_verifybackup`` of a chain combined with ``pg_combinebackup``: its members
    (full first) and the SHA-256 of each of their stored objects, as read back intact in the
    run that combined them."""

    members: tuple[str, ...]
    digests: Mapping[str, str]  # stored object key -> SHA-256
    checked_at: datetime

    def stands_for(self, members: Sequence[str], digests: Mapping[str, str]) -> bool:
        """Whether this check was of these members with these stored bytes."""
        return self.members == tuple(members) and dict(self.digests) == dict(digests)

    def to_dict(self) -> dict[str, Any]:
        return {
            "members": list(self.members),
            "digests": dict(sorted(self.digests.items())),
            "checked_at": self.checked_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChainCheck:
        digests = {str(k): str(v) for k, v in data["digests"].items()}
        members = tuple(str(m) for m in data["members"])
        return cls(members, digests, datetime.fromisoformat(data["checked_at"]))


@dataclass
class VerificationState:
    objects: dict[str, ObjectRead] = field(default_factory=dict)
    content: dict[str, datetime] = field(default_factory=dict)  # label -> checked at
    chains: dict[str, ChainCheck] = field(default_factory=dict)  # newest member -> its check

    @classmethod
    def load(cls, repo: Repository) -> tuple[VerificationState, str | None]:
        """The state, or an empty one and why (a missing file is not a problem)."""
        try:
            raw = repo.get_bytes(STATE_KEY)
        except StorageError as exc:
            if not repo.exists(STATE_KEY):
                return cls(), None
            return cls(), f"{STATE_KEY} cannot be read: {exc}"
        try:
            data = json.loads(raw)
            objects = {
                key: ObjectRead(
                    int(v["size"]), v.get("digest"), datetime.fromisoformat(v["read_at"])
                )
                for key, v in data["objects"].items()
            }
            content = {k: datetime.fromisoformat(v) for k, v in data["content"].items()}
            # written by powrops before the combined chains were recorded: none is
            chains = {k: ChainCheck.from_dict(v) for k, v in data.get("chains", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return cls(), f"{STATE_KEY} is damaged ({exc}); every object is read again"
        return cls(objects, content, chains), None

    def to_bytes(self) -> bytes:
        data = {
            "version": 1,
            "objects": {k: v.to_dict() for k, v in sorted(self.objects.items())},
            "content": {k: v.isoformat() for k, v in sorted(self.content.items())},
            "chains": {k: v.to_dict() for k, v in sorted(self.chains.items())},
        }
        return json.dumps(data, indent=1).encode()

    def merge(
        self, newer: VerificationState, present: set[str], damaged: frozenset[str] = frozenset()
    ) -> VerificationState:
        """This state updated with ``newer``'s reads, keeping only objects still present and
        forgetting the ``damaged`` ones (they are read again until repaired) and the chains a
        member of which is gone."""
        objects = {k: v for k, v in self.objects.items() if k in present and k not in damaged}
        for key, read in newer.objects.items():
            old = objects.get(key)
            if key in present and (old is None or old.read_at <= read.read_at):
                objects[key] = read
        labels = {k.split("/", 2)[1] for k in present if k.startswith("backups/")}
        content = {k: v for k, v in self.content.items() if k in labels}
        content.update({k: v for k, v in newer.content.items() if k in labels})
        chains = {k: v for k, v in self.chains.items() if labels.issuperset(v.members)}
        chains.update({k: v for k, v in newer.chains.items() if labels.issuperset(v.members)})
        return VerificationState(objects, content, chains)


@dataclass(frozen=True)
class Plan:
    """Which objects to read today, and why; the others are trusted from their last read."""

    reasons: dict[str, str]  # key -> new / changed / due / rotation / requested
    skipped: dict[str, datetime]  # key -> last read
    bytes_to_read: int
    bytes_skipped: int

    def reads(self, key: str) -> bool:
        """Whether ``key`` is read today; an object the listing lacks is always "read" (it is
        reported missing)."""
        return key in self.reasons or key not in self.skipped

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for reason in self.reasons.values():
            counted[reason] = counted.get(reason, 0) + 1
        return counted


def plan(
    objects: Iterable[ObjectInfo],
    state: VerificationState,
    now: datetime,
    reread_every: timedelta,
    *,
    everything: bool = False,
    always: Mapping[str, str] | None = None,
) -> Plan:
    """Choose today's reads.

    ``always`` names objects read whatever their state (history files, a backup checked in
    full). Besides the new and changed objects, everything not read within ``reread_every``
    less a day is due, and the oldest reads are added until a day's share of the repository
    (its bytes over the period's days) is read: every object is re-read within the period,
    and the load stays even from day to day.
    """
    reasons: dict[str, str] = {}
    trusted: list[tuple[datetime, ObjectInfo]] = []
    everything_bytes = 0
    listed = list(objects)
    for info in listed:
        everything_bytes += info.size
        read = state.objects.get(info.key)
        if everything:
            reasons[info.key] = "requested"
        elif always and info.key in always:
            reasons[info.key] = always[info.key]
        elif read is None:
            reasons[info.key] = "new"
        elif read.size != info.size:
            reasons[info.key] = "changed"
        elif now - read.read_at >= reread_every - DAY:
            reasons[info.key] = "due"
        else:
            trusted.append((read.read_at, info))
    period_days = max(reread_every / DAY, 1.0)
    share = everything_bytes / period_days
    rereads = sum(i.size for i in listed if reasons.get(i.key) in ("due", "rotation"))
    trusted.sort(key=lambda item: (item[0], item[1].key))
    skipped: dict[str, datetime] = {}
    for read_at, info in trusted:
        if rereads < share:
            reasons[info.key] = "rotation"
            rereads += info.size
        else:
            skipped[info.key] = read_at
    to_read = sum(i.size for i in listed if i.key in reasons)
    return Plan(reasons, skipped, to_read, everything_bytes - to_read)
