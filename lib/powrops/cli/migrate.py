"""``powrops migrate latest | rollback | status | production``: the schema migrations."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from powrops.cli.common import print_json, settings_of
from powrops.findings import Severity

if TYPE_CHECKING:
    from powrops.config import Settings
    from powrops.format import Echo
    from powrops.migrate.model import Options


def register(sub: Any) -> None:
    mig = sub.add_parser("migrate", help="schema migrations (alembic)")
    mig.add_argument("action", choices=["latest", "rollback", "status", "production"])
    mig.add_argument("--json", action="store_true", help="print the result as JSON")
    mig.set_defaults(func=cmd_migrate)
    prod = mig.add_argument_group(
        "production and rollback (powrops migrate production | rollback): safeguards"
    )
    prod.add_argument("--yes", action="store_true", help="confirm without a prompt")
    prod.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="rollback: drop tables that still hold rows (keep a copy first)",
    )
    prod.add_argument("--take-backup", action="store_true", help="take and verify a full first")
    prod.add_argument("--max-backup-age", metavar="DURATION", help="default backup.schedule.full")
    prod.add_argument(
        "--max-transaction-age",
        metavar="DURATION",
        default="1min",
        help="refuse while a transaction is older than this (1min)",
    )
    prod.add_argument(
        "--lock-timeout",
        metavar="DURATION",
        default="5s",
        help="give up a lock wait after this (5s)",
    )
    prod.add_argument(
        "--statement-timeout",
        metavar="DURATION",
        help="statement_timeout during the migration (default: the database's)",
    )


def cmd_migrate(args: argparse.Namespace) -> Severity | int:
    from powrops import migrate
    from powrops.db import engine

    if args.action == "production":
        return _production(args, settings_of(args))
    eng = engine(settings_of(args))
    if args.action == "latest":
        before = migrate.current(eng)
        migrate.upgrade(eng, "head")
        after = migrate.current(eng)
        print(
            f"migrated {before or 'base'} -> {after}"
            if before != after
            else f"already at head ({after})"
        )
        return Severity.OK
    if args.action == "rollback":
        eng.dispose()
        return _rollback(args, settings_of(args))
    rows = migrate.status(eng)
    if args.json:
        print_json([row.to_dict() for row in rows])
    else:
        for row in rows:
            mark = "applied" if row.applied else "pending"
            tx = "transaction" if row.transaction else "no transaction"
            print(f"{row.revision}  {row.timestamp:%Y-%m-%d %H:%M:%S}  {mark:8} {tx:15} {row.slug}")
    return Severity.OK if all(r.applied for r in rows) else Severity.WARNING


def _options(args: argparse.Namespace) -> Options:
    """The safeguards' settings from ``migrate production`` / ``rollback`` options."""
    from powrops.migrate.model import Options

    return Options.parse(
        max_backup_age=args.max_backup_age, take_backup=args.take_backup,
        max_transaction_age=args.max_transaction_age, lock_timeout=args.lock_timeout,
        statement_timeout=args.statement_timeout,
    )  # fmt: skip


def _progress(args: argparse.Namespace) -> Echo | None:
    return None if args.json else (lambda line: print(f"  {line}", file=sys.stderr))


def _production(args: argparse.Namespace, settings: Settings) -> int:
    """Plan, show, confirm, apply, check; the exit code of the result (3 when not confirmed)."""
    from powrops.db import identity
    from powrops.gate import confirm_at_terminal
    from powrops.migrate.production import apply, prepare
    from powrops.migrate.view import render_plan, render_result

    progress = _progress(args)
    plan = prepare(settings, _options(args), echo=progress)
    if not args.json:
        print(render_plan(plan))
        print()
    action = f"apply {len(plan.pending)} revision(s) up to {plan.head}"
    if (
        plan.pending
        and plan.allowed
        and not confirm_at_terminal(action, identity(settings), yes=args.yes)
    ):
        print("not migrated: not confirmed")
        return 3
    result = apply(settings, plan, echo=progress)
    if args.json:
        print_json(result.to_dict())
    else:
        print(render_result(result))
    return result.exit_code


def _rollback(args: argparse.Namespace, settings: Settings) -> Severity:
    """One revision back with the safeguards of a production migration: shown, confirmed,
    audited; refused when a safeguard fails or it would drop a table that holds rows."""
    from powrops.db import identity
    from powrops.gate import confirm_at_terminal
    from powrops.migrate.rollback import apply_rollback, prepare_rollback
    from powrops.migrate.view import render_plan

    progress = _progress(args)
    plan = prepare_rollback(settings, _options(args), allow_data_loss=args.allow_data_loss,
                            echo=progress)  # fmt: skip
    if not plan.pending:
        print("nothing to roll back: no migration is applied")
        return Severity.OK
    if not args.json:
        print(f"roll back {plan.current} -> {plan.head} (the downgrade SQL below)")
        print(render_plan(plan))
        print()
    if not plan.allowed:
        print("not rolled back: a safeguard failed", file=sys.stderr)
        return Severity.CRITICAL
    if not confirm_at_terminal(f"roll back {plan.current}", identity(settings), yes=args.yes):
        print("not rolled back: not confirmed")
        return Severity.UNKNOWN
    result = apply_rollback(settings, plan, echo=progress)
    if args.json:
        print_json(result.to_dict())
    elif result.applied:
        print(f"rolled back {result.before} -> {result.after or 'base'} (audited)")
    else:
        print(f"rollback FAILED at {result.after or 'base'}: {result.error}", file=sys.stderr)
    return result.status
