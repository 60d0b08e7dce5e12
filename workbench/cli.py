"""The ``workbench`` command line, for operations and the demo."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from workbench.cdr.formats import CdrFileError
from workbench.config import ConfigError, Settings, load_settings
from workbench.db.engine import make_engine, upgrade
from workbench.money import to_decimal
from workbench.period import Period, PeriodError
from workbench.rating import PlanError
from workbench.reference import ReferenceError

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
USER_ERRORS = (CdrFileError, ConfigError, PeriodError, PlanError, ReferenceError)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _engine(settings: Settings):
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return engine


def cmd_db_upgrade(args, settings: Settings) -> None:
    _engine(settings)
    print(f"database {settings.database_url} is up to date")


def cmd_sample(args, settings: Settings) -> None:
    from workbench.sample import generate_operator

    counts = generate_operator(Path(args.out), seed=args.seed, customers=args.customers, calls=args.calls)
    print(f"sample operator written to {args.out}: {counts}")


def cmd_load_reference(args, settings: Settings) -> None:
    from workbench.reference import load_reference

    counts = load_reference(_engine(settings), args.folder, settings.home_country_code)
    print("reference data loaded: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _print_loads(reports) -> None:
    for r in reports:
        if r.status == "skipped":
            print(f"{r.file}: already loaded, skipped")
            continue
        reasons = ", ".join(f"{k} {v}" for k, v in r.by_reason.items()) or "none"
        print(f"{r.file} ({r.format}): {r.records} records, {r.accepted} accepted, "
              f"{r.rejected} rejected ({reasons})")


def cmd_load_cdrs(args, settings: Settings) -> None:
    from workbench.integration import load_cdr_files

    reports = load_cdr_files(_engine(settings), args.files, settings, _now, args.format, progress=True)
    _print_loads(reports)


def _print_rating(summary) -> None:
    print(f"period {summary.period}: {summary.calls} calls to rate, {summary.rated} rated, "
          f"{summary.errors} not rated, {summary.kept_billed} already billed (kept)")
    if summary.errors_by_reason:
        print("  not rated: " + ", ".join(f"{k} {v}" for k, v in summary.errors_by_reason.items()))
    print(f"  consumption: {to_decimal(summary.amount_units)} EUR excl. VAT")
    table = summary.by_zone.assign(
        amount=summary.by_zone["amount_units"].map(lambda u: f"{to_decimal(u)}"),
        minutes=summary.by_zone["seconds"] // 60,
    )[["zone_code", "band", "calls", "minutes", "amount"]]
    print(table.to_string(index=False))


def cmd_rate(args, settings: Settings) -> None:
    from workbench.ratings import rate_period

    _print_rating(rate_period(_engine(settings), Period.parse(args.period), settings, _now()))


def cmd_demo(args, settings: Settings) -> None:
    """Load the sample operator and its month of calls, then rate the month."""
    from workbench.integration import load_cdr_files
    from workbench.ratings import rate_period
    from workbench.reference import load_reference

    if args.fresh and settings.database_url.startswith("sqlite:///"):
        db = Path(settings.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    engine = _engine(settings)
    folder = Path(args.data)
    print(f"== reference data from {folder / 'reference'}")
    counts = load_reference(engine, folder / "reference", settings.home_country_code)
    print("   " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"== CDR files from {folder / 'cdrs'}")
    files = sorted(p for p in (folder / "cdrs").iterdir() if p.is_file())
    _print_loads(load_cdr_files(engine, files, settings, _now, progress=True))
    print(f"== rating {args.period}")
    _print_rating(rate_period(engine, Period.parse(args.period), settings, _now()))
    print(f"== outputs: database {settings.database_url}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    parser.add_argument("--config", help="TOML configuration file (default: workbench.toml if present)")
    parser.add_argument("--database-url", help="overrides WORKBENCH_DATABASE_URL and the config file")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db-upgrade", help="create or migrate the database schema")
    p.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("sample", help="generate the sample operator's CSV files")
    p.add_argument("--out", default=str(SAMPLE))
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--calls", type=int, default=200_000)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("load-reference", help="load reference CSV files from a folder")
    p.add_argument("folder")
    p.set_defaults(func=cmd_load_reference)

    p = sub.add_parser("load-cdrs", help="load CDR files (native or Asterisk Master.csv)")
    p.add_argument("files", nargs="+")
    p.add_argument("--format", default="auto", choices=["auto", "native", "asterisk"])
    p.set_defaults(func=cmd_load_cdrs)

    p = sub.add_parser("rate", help="rate (or re-rate) the unbilled calls of a period")
    p.add_argument("--period", required=True, help="YYYY-MM")
    p.set_defaults(func=cmd_rate)

    p = sub.add_parser("demo", help="run the main job on the bundled sample data")
    p.add_argument("--data", default=str(SAMPLE))
    p.add_argument("--period", default="2026-10")
    p.add_argument("--fresh", action="store_true", help="start from an empty SQLite database")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, database_url=args.database_url)
        args.func(args, settings)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
