"""The held tables: workouts, user totals, users, sessions, consents, temp data, cache, logs."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from powrops.demo.data.catalogue import COMPOUNDS
from powrops.demo.data.params import SeedParams
from powrops.demo.data.plan import UserPlan
from powrops.demo.data.rows import (
    CacheEntry,
    Consent,
    Session,
    SystemLog,
    TempData,
    User,
    UserTotal,
    Workout,
)
from powrops.demo.data.simulate import Header, decimal_kg

SYSTEM_LOG_SPAN_DAYS = 456  # ~15 months


def workout_rows(headers: Iterable[Header]) -> tuple[Workout, ...]:
    return tuple(
        Workout(
            h.id,
            h.user_id,
            h.day,
            h.notes,
            decimal_kg(h.volume if h.stored_volume is None else h.stored_volume),
            h.archived_at,
            h.deleted_at,
            h.start,
            h.end,
        )
        for h in headers
    )


def user_total_rows(
    plans: Sequence[UserPlan], headers: Iterable[Header], errors: Mapping[int, tuple[int, int]]
) -> tuple[UserTotal, ...]:
    """What the application keeps per user: live (not soft-deleted) workouts and their volume."""
    count: dict[int, int] = {}
    volume: dict[int, int] = {}
    updated: dict[int, datetime] = {}
    for h in headers:
        if h.deleted_at is None:
            count[h.user_id] = count.get(h.user_id, 0) + 1
            volume[h.user_id] = volume.get(h.user_id, 0) + h.volume
            updated[h.user_id] = h.end
    rows = []
    for p in plans:
        extra_count, extra_volume = errors.get(p.user_id, (0, 0))
        rows.append(
            UserTotal(
                p.user_id,
                count.get(p.user_id, 0) + extra_count,
                decimal_kg(volume.get(p.user_id, 0) + extra_volume),
                updated.get(p.user_id, p.created_at),
            )
        )
    return tuple(rows)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _session(
    rng: random.Random, uid: int, created: datetime, seen_within: timedelta, now: datetime
) -> Session:
    seen = min(created + seen_within * rng.random(), now - timedelta(minutes=1))
    return Session(_uuid(rng), uid, created, created + timedelta(days=14), max(created, seen))


def session_rows(
    params: SeedParams, plans: Sequence[UserPlan], last: Mapping[int, datetime]
) -> tuple[Session, ...]:
    """A live session per active user, and expired ones (more than 14 days) for everybody."""
    rng = params.rng("sessions")
    now = params.now
    rows = []
    for p in plans:
        end = p.deleted_at or last.get(p.user_id, p.created_at)
        if p.status == "active":
            created = now - timedelta(seconds=rng.randint(1_800, 12 * 86_400))
            created = max(created, p.created_at + timedelta(hours=1))
            rows.append(_session(rng, p.user_id, created, timedelta(days=2), now))
            end = created
        for _ in range(rng.randint(0, 2) if p.status == "active" else rng.randint(1, 2)):
            created = end - timedelta(seconds=rng.randint(20 * 86_400, 150 * 86_400))
            rows.append(
                _session(rng, p.user_id, max(created, p.created_at), timedelta(days=10), now)
            )
    rows.sort(key=lambda s: (s.created_at, s.user_id))
    return tuple(rows)


def user_rows(
    plans: Sequence[UserPlan], last: Mapping[int, datetime], sessions: Iterable[Session]
) -> tuple[User, ...]:
    active = dict(last)
    for s in sessions:
        if s.last_seen_at > active.get(s.user_id, s.last_seen_at - timedelta(seconds=1)):
            active[s.user_id] = s.last_seen_at
    return tuple(
        User(
            p.user_id,
            f"user{p.user_id}@example.invalid",
            f"Demo Lifter {p.user_id}",
            p.created_at,
            active.get(p.user_id),
            p.deleted_at,
        )
        for p in plans
    )


def consent_rows(params: SeedParams, plans: Sequence[UserPlan]) -> tuple[Consent, ...]:
    """Grants per purpose at sign-up or later, about a quarter of them revoked since."""
    rng = params.rng("consents")
    now = params.now
    rows: list[Consent] = []
    for p in plans:
        for purpose, share in (("analytics", 0.8), ("marketing", 0.4), ("research", 0.25)):
            if rng.random() >= share:
                continue
            granted_at = p.created_at + timedelta(seconds=rng.randint(0, 30 * 86_400))
            source = rng.choice(("signup", "settings", "banner"))
            revoked_at = None
            if rng.random() < 0.25:
                revoked_at = min(
                    granted_at + timedelta(days=rng.randint(1, 300)), now - timedelta(hours=1)
                )
            rows.append(
                Consent(
                    len(rows) + 1,
                    p.user_id,
                    purpose,
                    revoked_at is None,
                    granted_at,
                    revoked_at,
                    source,
                )
            )
    return tuple(rows)


def temp_data_rows(params: SeedParams, user_ids: Sequence[int]) -> tuple[TempData, ...]:
    """Uploads and exports in flight over the last 3 days; those over 24 h old are due."""
    rng = params.rng("temp-data")
    ages = [30 * 3_600, 2 * 3_600] + [
        rng.randint(60, 72 * 3_600) for _ in range(max(8, len(user_ids) // 2))
    ]
    rows = []
    for age in ages:
        uid = rng.choice(user_ids)
        kind = rng.choice(("csv_import", "export", "photo_upload"))
        payload = json.dumps(
            {"kind": kind, "user_id": uid, "rows": rng.randint(1, 500)}, sort_keys=True
        )
        rows.append(
            (
                params.now - timedelta(seconds=age),
                f"{kind}:{uid}:{rng.getrandbits(48):012x}",
                payload,
            )
        )
    rows.sort()
    return tuple(TempData(i + 1, key, payload, at) for i, (at, key, payload) in enumerate(rows))


def cache_entry_rows(params: SeedParams, plans: Sequence[UserPlan]) -> tuple[CacheEntry, ...]:
    """Cached stats with a 1 h TTL written over the last 3 hours: most already expired."""
    rng = params.rng("cache")
    keys = [f"leaderboard:{e.name.lower().replace(' ', '-')}:weekly" for e in COMPOUNDS]
    keys += [
        f"user:{p.user_id}:stats" for p in plans if p.status == "active" and rng.random() < 0.5
    ]
    rows = []
    for i, key in enumerate(keys):
        age = (600, 7_200)[i] if i < 2 else rng.randint(60, 3 * 3_600)
        created = params.now - timedelta(seconds=age)
        value = json.dumps({"hits": rng.randint(0, 900), "version": 1}, sort_keys=True)
        rows.append(CacheEntry(key, value, created, created + timedelta(hours=1)))
    return tuple(rows)


LOG_RETENTION_DAYS = {"security": 365, "performance": 91, "debug": 7}


def _log_message(rng: random.Random, category: str, user_ids: Sequence[int]) -> tuple[str, str]:
    uid = rng.choice(user_ids)
    if category == "security":
        return rng.choice(
            (
                ("INFO", f"login succeeded for user {uid}"),
                ("WARNING", f"login failed for user {uid} from 192.0.2.{rng.randint(1, 254)}"),
                ("INFO", f"password changed for user {uid}"),
                ("WARNING", f"session revoked for user {uid}: token reuse"),
            )
        )
    if category == "performance":
        ms = rng.randint(200, 4_000)
        return ("WARNING" if ms > 1_000 else "INFO"), rng.choice(
            (
                f"slow query {ms} ms: SELECT * FROM workouts WHERE user_id = $1 LIMIT 20",
                f"p95 latency {ms} ms for GET /api/workouts",
                f"cache rebuild took {ms} ms for user:{uid}:stats",
            )
        )
    return "DEBUG", rng.choice(
        (f"cache miss user:{uid}:stats", f"recomputed total_volume for a workout of user {uid}")
    )


def system_log_rows(params: SeedParams, user_ids: Sequence[int]) -> tuple[SystemLog, ...]:
    """Logs of every category over ~15 months, each with rows inside and past its retention."""
    rng = params.rng("system-logs")
    span = SYSTEM_LOG_SPAN_DAYS * 86_400
    entries: list[tuple[int, str]] = []
    for category, keep in LOG_RETENTION_DAYS.items():
        entries += [((keep + 20) * 86_400, category), (keep * 43_200, category)]
    for _ in range(max(300, 30 * len(user_ids))):
        category = rng.choices(("security", "performance", "debug"), weights=(3, 4, 3))[0]
        recent = category == "debug" and rng.random() < 0.5
        entries.append((rng.randint(60, 14 * 86_400 if recent else span), category))
    rows = []
    for age, category in entries:
        level, message = _log_message(rng, category, user_ids)
        rows.append((params.now - timedelta(seconds=age), category, level, message))
    rows.sort()
    return tuple(
        SystemLog(i + 1, cat, at, level, msg) for i, (at, cat, level, msg) in enumerate(rows)
    )
