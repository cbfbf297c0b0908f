"""``powrops audit apply | status | changes [--days N] | history TABLE ROW_ID [--json]``.

``apply`` turns each audit event class on or off as ``audit.events`` says (row triggers, DDL
event triggers) and makes the row triggers record what ``audit.metadata`` asks for; ``status``
shows what is installed; ``changes`` counts row changes per table and action and lists recent
system changes; ``history`` lists one row's changes (columns only, never values).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from powrops.cli.common import settings_of
from powrops.findings import Severity


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="audit trail: apply the config, changes, row history")
    verbs = parser.add_subparsers(dest="audit_verb", metavar="VERB", required=True)
    apply = verbs.add_parser("apply", help="enable/disable the audit triggers per audit.events")
    apply.set_defaults(func=cmd_apply)
    status = verbs.add_parser("status", help="which audit triggers exist and are enabled")
    status.set_defaults(func=cmd_status)
    changes = verbs.add_parser("changes", help="changes per table and action, system changes")
    changes.add_argument("--days", type=int, default=7, help="look back this many days (7)")
    changes.set_defaults(func=cmd_changes)
    history = verbs.add_parser("history", help="the recorded changes of one row")
    history.add_argument("table")
    history.add_argument("row_id")
    history.set_defaults(func=cmd_history)
    for p in (apply, status, changes, history):
        p.add_argument("--json", action="store_true", help="print JSON")


def _connect(args: argparse.Namespace) -> Any:
    from powrops.db import connect

    settings = settings_of(args)
    return settings, connect(settings, autocommit=True)


def _print(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else "\n".join(lines))


def cmd_apply(args: argparse.Namespace) -> Severity:
    from powrops import audit

    settings, conn = _connect(args)
    with conn:
        done = audit.apply_config(conn, settings.audit.events, settings.audit.metadata)
        missing = audit.status(conn).missing()
    _print(
        args,
        {"statements": done, "missing": missing},
        done + [f"missing (not installed): {m}" for m in missing],
    )
    return Severity.WARNING if missing else Severity.OK


def cmd_status(args: argparse.Namespace) -> Severity:
    from powrops import audit

    _, conn = _connect(args)
    with conn:
        trail = audit.status(conn)
    lines = [f"{audit.ROW_TRIGGER} on {t}: {s or 'missing'}" for t, s in trail.row_triggers.items()]
    lines += [f"event trigger {n}: {s or 'missing'}" for n, s in trail.event_triggers.items()]
    _print(args, trail.to_dict(), lines)
    return Severity.WARNING if trail.missing() else Severity.OK


def cmd_changes(args: argparse.Namespace) -> Severity:
    from powrops import audit
    from powrops.integrity.timeline import days_back

    since = days_back(args.days, "--days")  # a window of 1e8 days is no date: refused too
    _, conn = _connect(args)
    with conn:
        rows = audit.changes_by_table(conn, since)
        ddl = audit.system_changes(conn, since)
    lines = [f"{r['table'] or '-':16} {r['action']:8} {r['changes']:>8}" for r in rows]
    lines += [
        f"{d['time']:%Y-%m-%d %H:%M:%S} {d['actor']} {d['command']} {d['object']}" for d in ddl
    ]
    _print(args, {"changes": rows, "system_changes": ddl}, lines or ["no changes recorded"])
    return Severity.OK


def cmd_history(args: argparse.Namespace) -> Severity:
    from powrops import audit

    _, conn = _connect(args)
    with conn:
        rows = audit.row_history(conn, args.table, args.row_id)
    lines = [
        f"{r['time']:%Y-%m-%d %H:%M:%S} {r['actor']} {r['action']} {r['columns']}" for r in rows
    ]
    _print(args, rows, lines or [f"no recorded changes of {args.table} {args.row_id}"])
    return Severity.OK
