"""Every human format of a figure: sizes, durations, times, and the progress-line callback.

One place, so that a size reads the same in a report, the index and the CLI. ``result.json``
keeps raw values; only what people read goes through here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

#: A callback that prints one progress line (``print``, a notebook's display, or a logger);
#: ``None`` where a function takes ``Echo | None`` means quiet.
Echo = Callable[[str], None]

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: float) -> str:
    """A size in binary units, as PostgreSQL's pg_size_pretty counts: 1536 -> '1.5 KiB'."""
    size = float(value)
    for unit in _BINARY_UNITS:
        if abs(size) < 1024 or unit == _BINARY_UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"


def human_duration(seconds: float) -> str:
    """A length of time in the largest units that keep it exact enough to act on:
    '45 s', '12 min', '3 h 12 min', '2 d 3 h'."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def human_seconds(seconds: float) -> str:
    """A measured time: short ones to a tenth or hundredth ('0.37 s', '3.2 s'), longer ones as
    :func:`human_duration` ('45 s', '3 h 12 min')."""
    value = max(float(seconds), 0.0)
    if value < 1:
        return f"{value:.2f} s"
    if value < 10:
        return f"{value:.1f} s"
    return human_duration(value)


def human_time(moment: datetime | None, missing: str = "-") -> str:
    """A moment in UTC to the second: '2026-12-04 01:30:19 UTC'; ``missing`` for None.

    A naive datetime is taken to be UTC already (PostgreSQL's timestamptz arrives aware).
    """
    if moment is None:
        return missing
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_target(target: Mapping[str, Any] | None) -> str | None:
    """The database a run acts on (:class:`powrops.db.Identity` as a dict, as result.json keeps
    it) in one line: 'powr on 127.0.0.1:5432, PostgreSQL 18.1, system 7451..., embedded'
    ('server primary: powr on ...' for a server of ``[servers.*]``).
    None for runs archived before targets were recorded."""
    if not target:
        return None
    where = f"{target.get('host')}:{target['port']}" if target.get("port") else target.get("host")
    server = target.get("server")
    named = f"server {server}: " if server and server != "default" else ""
    parts = [f"{named}{target.get('database')} on {where}"]
    if target.get("server_version"):
        parts.append(f"PostgreSQL {target['server_version']}")
    if target.get("system_identifier"):
        parts.append(f"system {target['system_identifier']}")
    parts.append("embedded" if target.get("embedded") else "configured by database.url")
    return ", ".join(parts)


#: Beyond this many days a forecast is no longer a date anyone plans for.
CENTURY_DAYS = 36525.0


def human_count(value: float) -> str:
    """A count with thousands separators: 17684159 -> '17,684,159'; a fractional count keeps
    one decimal ('2.5')."""
    number = float(value)
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.1f}"


def human_number(value: float) -> str:
    """A measurement never in exponent notation: '1,218,950', '25,088.3', '0.0042', '0'."""
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):  # NaN, infinities
        return "none" if number != number else ("unbounded" if number > 0 else "-unbounded")
    if number.is_integer() or abs(number) >= 1000:
        return f"{round(number):,}"
    if abs(number) >= 1:
        return f"{number:,.2f}".rstrip("0").rstrip(".")
    text = f"{number:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else "less than 0.0001"


def human_rate(bytes_per_day: float) -> str:
    """A growth rate in binary units per day: '24.5 KiB/day', '-1.0 MiB/day'."""
    return f"{human_bytes(bytes_per_day)}/day"


def human_ratio(ratio: float) -> str:
    """A ratio (0..1) as a percentage, precise near the ends where it matters:
    0.999902 -> '99.99 %', 0.8571 -> '85.7 %', 0 -> '0 %', 1 -> '100 %'."""
    return human_percent(float(ratio) * 100)


def human_percent(percent: float) -> str:
    """A figure already in percent: 85.71 -> '85.7 %', 99.99 -> '99.99 %', 100 -> '100 %'."""
    value = float(percent)
    if value.is_integer():
        return f"{int(value)} %"
    digits = 2 if 99 < value < 100 or 0 < value < 1 else 1
    return f"{value:.{digits}f} %"


def human_bool(value: bool | None, yes: str = "yes", no: str = "no", missing: str = "-") -> str:
    """A boolean as a word ('yes'/'no' unless told otherwise); ``missing`` for None."""
    if value is None:
        return missing
    return yes if value else no


def human_days(days: float | None, missing: str = "-") -> str:
    """A number of days ahead: '12 days', '3.4 years', 'not within a century' past 100 years."""
    if days is None:
        return missing
    value = float(days)
    if value != value or value >= CENTURY_DAYS:
        return "not within a century"
    if value < 1:
        return human_duration(value * 86400)
    if value < 365:
        count = round(value)
        return f"{count} day" if count == 1 else f"{count} days"
    return f"{value / 365.25:.1f} years"


def _timestamp(value: str) -> datetime | None:
    """The datetime an ISO 8601 timestamp string names, None for any other string."""
    if len(value) < 16 or value[4:5] != "-" or value[10:11] not in ("T", " "):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def human_label(key: str) -> str:
    """A result key as words a reader knows: 'growth_bytes_per_day' -> 'growth per day',
    'rto_s' -> 'rto', 'cache_hit_rate' -> 'cache hit rate'."""
    words = key
    for suffix, replacement in (
        ("_bytes_per_day", "_per_day"),
        ("_bytes", ""),
        ("_pct", ""),
        ("_percent", ""),
        ("_s", ""),
        ("_at", ""),
    ):
        if words.endswith(suffix) and len(words) > len(suffix):
            words = words[: -len(suffix)] + replacement
            break
    words = words.replace("_", " ")
    if words in _ACRONYMS:
        return _ACRONYMS[words]
    return " ".join(_WORDS.get(word, word) for word in words.split(" "))


#: Words a label spells as people do.
_WORDS = {"wal": "WAL", "rto": "RTO", "rpo": "RPO", "ok": "OK", "gdpr": "GDPR"}

_ACRONYMS = {
    "integrity failures": "integrity runs with violations",
    "failed checks": "failed checks (latest run)",
}


def human_value(key: str, value: Any) -> str:
    """One figure as a reader sees it, chosen by what its key says it measures.

    ``*_bytes_per_day`` is a rate, ``*_bytes`` a size, ``days_to_*`` a number of days ahead,
    ``*_rate``/``*_ratio`` a ratio, ``*_pct``/``*_percent`` a percentage, ``*_s`` a duration,
    ISO timestamps a time in UTC to the second, booleans words, other numbers counts or plain
    figures (never exponent notation). Anything else is its text.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return human_bool(value)
    if isinstance(value, datetime):
        return human_time(value)
    if isinstance(value, int | float):
        return _human_number_for(key, float(value), isinstance(value, int))
    if isinstance(value, str):
        moment = _timestamp(value)
        return human_time(moment) if moment is not None else value
    if isinstance(value, Mapping):
        pairs = ((str(k), v) for k, v in value.items())
        return ", ".join(f"{human_label(k)} {human_value(k, v)}" for k, v in pairs)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(human_value(key, v) for v in value) or "none"
    return str(value)


#: What the ``value`` of a check's finding measures, as a key :func:`human_value` reads
#: (checks not listed give plain counts or their text).
FINDING_VALUE_KEYS = {
    **dict.fromkeys(
        ("wal_size", "table_size", "index_size", "replication_slot", "table_bloat",
         "index_bloat", "unused_index"),
        "value_bytes",
    ),
    **dict.fromkeys(
        ("backup_freshness", "query_time", "running_query", "blocked", "idle_in_transaction",
         "long_transaction", "replication_lag", "archive_age", "prepared_transactions",
         "backup"),
        "value_s",
    ),
    **dict.fromkeys(
        ("disk_usage", "dead_tuples", "connections", "checkpoints", "sequences"), "value_percent"
    ),
    "disk_forecast": "value_days",
}  # fmt: skip


def human_finding_value(check: str, value: Any) -> str:
    """A finding's value in the unit its check measures: ``wal_size`` 100663681 ->
    '96.0 MiB', ``backup_freshness`` 508.1 -> '8 min'; empty when there is none."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return human_value(FINDING_VALUE_KEYS.get(check, ""), value)


#: Integer keys that name something (a port, a process, a row) rather than count it.
_IDENTIFIERS = frozenset({"id", "pid", "port", "timeline", "xid", "year", "oid"})


def _human_number_for(key: str, number: float, integral: bool) -> str:
    name = key.lower()
    if integral and (name in _IDENTIFIERS or name.endswith(("_id", "_pid", "_port"))):
        return str(int(number))
    if name.endswith("bytes_per_day"):
        return human_rate(number)
    if name.endswith("_bytes") or name.startswith("bytes"):
        return human_bytes(number)
    if name.startswith("days_to") or name.endswith("_days"):
        return human_days(number)
    if name.endswith(("_rate", "_ratio")):
        return human_ratio(number)
    if name.endswith(("_pct", "_percent")) or name == "percent":
        return human_percent(number)
    if name.endswith(("_s", "_seconds")):
        return human_seconds(number)
    if integral:
        return human_count(number)
    return human_number(number)


def human_rows(rows: Any) -> str:
    """A query's result rows as a reader reads them: one value alone ('50', '1,234'), one row
    as its values ('a, b'), several rows counted ('3 rows: 1; 2; 3'), none as 'no rows'."""
    if rows is None:
        return "-"
    if not isinstance(rows, list | tuple):
        return human_value("", rows)
    if not rows:
        return "no rows"
    shown = [
        ", ".join(human_value("", v) for v in row) if isinstance(row, list | tuple) else str(row)
        for row in rows
    ]
    if len(shown) == 1:
        return shown[0]
    more = f"; ... ({len(shown) - 5} more)" if len(shown) > 5 else ""
    return f"{human_count(len(shown))} rows: " + "; ".join(shown[:5]) + more
