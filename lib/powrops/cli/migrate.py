"""``powrops migrate latest | rollback | status | production``: the schema migrations."""

from __future__ import annotations

import argparse
from typing import Any

from powrops.cli.common import print_json, settings_of
from powrops.findings import Severity


def register(sub: Any) -> None:
    mig = sub.add_parser("migrate", help="schema migrations (alembic)")
    mig.add_argument("action", choices=["latest", "rollback", "status", "production"])
    mig.add_argument("--json", action="store_true")
    mig.set_defaults(func=cmd_migrate)
    prod = mig.add_argument_group("production (powrops migrate production)")
    prod.add_argument("--yes", action="store_true", help="confirm without a prompt")
    prod.add_argument("--take-backup", action="store_true", help="take and verify a full first")
    prod.add_argument("--max-backup-age", metavar="DURATION", help="default backup.schedule.full")
    prod.add_argument("--max-transaction-age", metavar="DURATION", default="1min")
    prod.add_argument("--lock-timeout", metavar="DURATION", default="5s")
    prod.add_argument("--statement-timeout", metavar="DURATION", help="default database's")


def cmd_migrate(args: argparse.Namespace) -> Severity | int:
    from powrops import migrate
    from powrops.db import engine

    if args.action == "production":
        from powrops.migrate.production import cli_main

        return cli_main(args, settings_of(args))
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
        before = migrate.current(eng)
        if before is None:
            print("nothing to roll back: no migration is applied")
            return Severity.OK
        migrate.downgrade(eng, "-1")
        print(f"rolled back {before} -> {migrate.current(eng) or 'base'}")
        return Severity.OK
    rows = migrate.status(eng)
    if args.json:
        print_json([row.to_dict() for row in rows])
    else:
        for row in rows:
            mark = "applied" if row.applied else "pending"
            tx = "transaction" if row.transaction else "no transaction"
            print(f"{row.revision}  {row.timestamp:%Y-%m-%d %H:%M:%S}  {mark:8} {tx:15} {row.slug}")
    return Severity.OK if all(r.applied for r in rows) else Severity.WARNING
