"""The daily verification at the strategy's retention, against verifying the newest backup only.

A small database (pgbench ``--scale``) is backed up into the shape the strategy keeps: daily
fulls for ``--days`` days, the last ``--hourly-days`` of them each followed by ``--per-day``
hourly incrementals (30 fulls and 7 x 24 = 168 incrementals by default), with writes and WAL
between them. Then:

1. the first ``powrops verify`` (everything is new: read once);
2. one more day of backups (a full and its incrementals);
3. A: the daily ``powrops verify`` (what is new, plus the rotating share of re-reads);
   B: ``powrops verify NEWEST --content`` (the newest backup alone, read as a new backup's
   first read is: its chain's content decompressed and checked, combined once; after A, a plain
   ``verify NEWEST`` would rely on what A just checked and measure less than what was new);
   C: ``powrops verify --all`` (everything read, as before the cost model);
4. a chain of one full and seven incrementals, every member verified once (``verify
   NEWEST_INCREMENTAL``: each member's content checked, the chain combined and checked with
   ``pg_verifybackup``); then ``--rounds`` interleaved rounds of ``verify NEWEST_INCREMENTAL``
   against ``verify FULL`` (the same stored bytes: the combined check is relied on).

Targets: A <= 2 x (B + C / 7), the share of re-reads being a seventh of everything with
``verification.reread_every`` = 7 days; median chain verify <= 1.5 x the full's. Bytes read are
printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _site import QUICK, Site, Targets, machine, median, mib, table


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="pgbench scale")
    parser.add_argument("--days", type=int, default=4 if QUICK else 30)
    parser.add_argument("--hourly-days", type=int, default=2 if QUICK else 7)
    parser.add_argument("--per-day", type=int, default=4 if QUICK else 24)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the chain's verify")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


class Bench:
    def __init__(self, scale: int) -> None:
        # the default retention (fulls 30 days, incrementals 7) keeps every backup taken here
        self.site = Site.create("retention")
        self.site.pgbench("-i", "-s", str(scale), "-q")

    def cli(self, *args: str) -> tuple[float, dict[str, object]]:
        started = time.perf_counter()
        proc = subprocess.run(self.site.powrops_argv(*args, "--json"), env=self.site.powrops_env(),
                              capture_output=True, text=True, check=False)  # fmt: skip
        took = time.perf_counter() - started
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"powrops {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr[-2000:]}{proc.stdout[-1000:]}")  # fmt: skip
        return took, dict(json.loads(proc.stdout))

    def backup(self, kind: str) -> str:
        self.site.pgbench("-t", "30", "-c", "1")  # a little new data and WAL
        self.site.sql("SELECT pg_switch_wal()")
        _, record = self.cli("backup", kind)
        return str(record["label"])

    def day(self, incrementals: int) -> list[str]:
        labels = [self.backup("full")]
        labels += [self.backup("incremental") for _ in range(incrementals)]
        return labels


def _read(report: dict[str, object]) -> int:
    figures = report["figures"]
    assert isinstance(figures, dict)
    return int(figures.get("bytes_read", 0))


def _read_text(report: dict[str, object]) -> str:
    """The stored bytes, backup files and WAL objects a verification read."""
    figures = report["figures"]
    assert isinstance(figures, dict)
    files, wal = figures.get("files_checked", 0), figures.get("wal_checked", 0)
    return f"{mib(_read(report))} ({files} files + {wal} WAL)"


def _combined(report: dict[str, object], label: str) -> str:
    """What ``verify`` said of ``label``'s combined chain (its ``pg_verifybackup`` column)."""
    rows = report["backups"]
    assert isinstance(rows, list)
    return str(next(r["pg_verifybackup"] for r in rows if r["label"] == label))


def main() -> int:
    args = parse_args()
    targets = Targets()
    print(f"machine: {machine()}", flush=True)
    bench = Bench(args.scale)
    try:
        started = time.perf_counter()
        for day in range(args.days):
            hourly = day >= args.days - args.hourly_days
            bench.day(args.per_day if hourly else 0)
            print(f"  day {day + 1}/{args.days} backed up", flush=True)
        took, first = bench.cli("verify")
        print(f"backups taken in {time.perf_counter() - started:.0f} s; first verify "
              f"{took:.1f} s, {mib(_read(first))} read", flush=True)  # fmt: skip
        labels = bench.day(args.per_day)
        daily_s, daily = bench.cli("verify")
        newest_s, newest = bench.cli("verify", labels[-1], "--content")
        all_s, everything = bench.cli("verify", "--all")
        chain = bench.day(7)
        once_s, once = bench.cli("verify", chain[-1])  # every member verified once
        full_times, chain_times = [], []
        for _ in range(args.rounds):
            took, full = bench.cli("verify", chain[0])
            full_times.append(took)
            took, newest_inc = bench.cli("verify", chain[-1])
            chain_times.append(took)
            print(f"  chain round: full {full_times[-1]:.2f} s, newest incremental "
                  f"{took:.2f} s", flush=True)  # fmt: skip
    finally:
        bench.site.finish(args.keep)

    backups = args.days + 1 + args.hourly_days * args.per_day + args.per_day
    print()
    print(f"{backups} backups ({args.days + 1} fulls) of a pgbench scale-{args.scale} database")
    print(table(["verification", "seconds", "stored bytes read"], [
        ["A daily verify (new + rotating share)", f"{daily_s:.2f}", _read_text(daily)],
        ["B verify NEWEST --content (what was new)", f"{newest_s:.2f}", _read_text(newest)],
        ["C verify --all", f"{all_s:.2f}", _read_text(everything)],
        ["chain of 1 + 7, first verify of its newest", f"{once_s:.2f}", _read_text(once)],
        ["full of that chain (median)", f"{median(full_times):.2f}", _read_text(full)],
        ["newest incremental of that chain (median)", f"{median(chain_times):.2f}",
         _read_text(newest_inc)],
    ]))  # fmt: skip
    print(f"\nfirst verify of the chain, pg_verifybackup: {_combined(once, chain[-1])}")
    print(f"later verify of the chain, pg_verifybackup: {_combined(newest_inc, chain[-1])}")
    bound = 2 * (newest_s + all_s / 7)
    plan = daily["figures"]["plan"]  # type: ignore[index]
    print(f"\ndaily plan: {plan}")
    print(f"A / (B + C/7) = {daily_s / (newest_s + all_s / 7):.2f}: "
          f"{targets.check('A / (B + C/7) <= 2', daily_s <= bound)} (target <= 2)")  # fmt: skip
    ratio = median(chain_times) / median(full_times)
    print(f"chain / full = {ratio:.2f} (of the medians; per round "
          f"{' '.join(f'{c / f:.2f}' for c, f in zip(chain_times, full_times, strict=True))}): "
          f"{targets.check('chain / full <= 1.5', ratio <= 1.5)} (target <= 1.5)")  # fmt: skip
    print(f"machine at the end: {machine()}")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
