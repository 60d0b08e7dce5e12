"""The ``workbench`` command line, for operations and the demo."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from workbench.billing import BillingError
from workbench.cdr.formats import CdrFileError
from workbench.config import ConfigError, Settings, load_settings
from workbench.db.engine import make_engine, upgrade
from workbench.mail import MailError
from workbench.money import to_decimal
from workbench.period import Period, PeriodError
from workbench.rating import PlanError
from workbench.reference import ReferenceError
from workbench.sepa import SepaError
from workbench.storage import Storage, StorageError

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
USER_ERRORS = (BillingError, CdrFileError, ConfigError, MailError, PeriodError, PlanError, ReferenceError,
               SepaError, StorageError)


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


def _money(cents: int) -> str:
    return f"{to_decimal(cents, 100)} EUR"


def _report_path(settings: Settings, run_id: int, period: str) -> Path:
    return Path(settings.output_dir) / "reports" / f"control-report-{period}-run{run_id}.xlsx"


def _write_report(engine, settings: Settings, run_id: int, period: str) -> Path:
    from workbench.billing import run_report
    from workbench.reports.excel import write_control_report

    path = write_control_report(run_report(engine, run_id, settings), _report_path(settings, run_id, period),
                                title=f"Billing control report, {period}, run {run_id}")
    Storage(settings.storage_url).put(f"reports/{period}/{path.name}", path.read_bytes())
    print(f"   control report: {path} (and reports/{period}/{path.name} in the FTP space)")
    return path


def _run_options(args, settings: Settings):
    from workbench.billing import RunOptions, default_dates

    period = Period.parse(args.period)
    invoice_date, due_date = default_dates(period, settings)
    return RunOptions(
        str(period),
        date.fromisoformat(args.invoice_date) if args.invoice_date else invoice_date,
        date.fromisoformat(args.due_date) if args.due_date else due_date,
        args.customers, args.advance, args.pdfs,
    )


def _preprod(engine, settings: Settings, options) -> int:
    from workbench.billing import preprod

    summary = preprod(engine, options, settings, _now())
    numbers = f" ({summary.numbers[0]} to {summary.numbers[1]})" if summary.numbers else ""
    print(f"pre-production run {summary.run_id} for {summary.period}: {summary.invoices} draft invoices"
          f"{numbers}, total {_money(summary.total_incl_cents)}, net payable {_money(summary.net_payable_cents)}")
    _write_report(engine, settings, summary.run_id, summary.period)
    if options.pdfs:
        _publish(engine, settings, summary.run_id)
    return summary.run_id


def _publish(engine, settings: Settings, run_id: int, annex: bool | None = None) -> None:
    from workbench.publishing import publish_documents

    report = publish_documents(engine, settings, run_id=run_id, annex=annex)
    print(f"   PDFs of run {run_id}: {len(report.stored)} stored, {len(report.already)} already stored, "
          f"{len(report.failed)} failed, in {settings.storage_url}")
    for path, error in report.failed.items():
        print(f"   failed: {path}: {error}")


def cmd_documents(args, settings: Settings) -> None:
    engine = _engine(settings)
    if (args.run is None) == (not args.invoice):
        raise BillingError("give --run N or --invoice NUMBER...")
    if args.invoice:
        _publish_invoices(engine, settings, args.invoice, annex=True if args.annex else None)
        return
    from workbench.billing import list_runs

    if args.run not in set(list_runs(engine)["id"]):
        raise BillingError(f"there is no billing run {args.run}")
    _publish(engine, settings, args.run, annex=True if args.annex else None)


def _publish_invoices(engine, settings: Settings, numbers: list[str], annex: bool | None = None) -> None:
    from sqlalchemy import select

    from workbench.db import schema as s
    from workbench.publishing import publish_documents

    with engine.connect() as connection:
        found = dict(connection.execute(
            select(s.Invoice.number, s.Invoice.id).where(s.Invoice.number.in_(numbers))).all())
    unknown = sorted(set(numbers) - set(found))
    if unknown:
        raise BillingError(f"unknown invoice numbers: {', '.join(unknown)}")
    report = publish_documents(engine, settings, invoice_ids=list(found.values()), annex=annex)
    print(f"   PDFs: {len(report.stored)} stored, {len(report.already)} already stored, {len(report.failed)} failed")
    for path, error in report.failed.items():
        print(f"   failed: {path}: {error}")


def cmd_preprod(args, settings: Settings) -> None:
    try:
        options = _run_options(args, settings)
    except ValueError as exc:
        raise BillingError(f"bad date: {exc}") from None
    _preprod(_engine(settings), settings, options)


def _production(engine, settings: Settings, run_id: int) -> None:
    from workbench.billing import production

    summary = production(engine, run_id, settings, _now())
    if summary.invoices:
        print(f"production run {summary.run_id} for {summary.period}: {summary.message}; total "
              f"{_money(summary.total_incl_cents)}, net payable {_money(summary.net_payable_cents)}")
        try:
            _publish(engine, settings, summary.run_id)
        except StorageError as exc:
            raise StorageError(f"{exc}. The invoices are issued; store their PDFs with `workbench documents --run "
                               f"{summary.run_id}` once the FTP space is back") from None
    else:
        print(summary.message or f"nothing issued for {summary.period}")
    return summary


def cmd_production(args, settings: Settings) -> None:
    _production(_engine(settings), settings, args.run)


def cmd_runs(args, settings: Settings) -> None:
    from workbench.billing import list_runs

    runs = list_runs(_engine(settings), args.period)
    if runs.empty:
        print("no billing runs")
        return
    runs["total"] = runs["total_incl_cents"].map(lambda c: f"{to_decimal(int(c), 100)}")
    print(runs[["id", "kind", "period", "status", "invoice_date", "invoices", "total", "source_run_id",
                "created_by", "created_at"]].to_string(index=False))


def cmd_delete_run(args, settings: Settings) -> None:
    from workbench.billing import delete_run

    print(f"run {args.run} deleted ({delete_run(_engine(settings), args.run)} drafts)")


def cmd_compare(args, settings: Settings) -> None:
    from workbench.billing import compare_runs

    diff = compare_runs(_engine(settings), args.run_a, args.run_b)
    changed = diff[diff["Status"] != "unchanged"]
    print(f"run {args.run_a} -> run {args.run_b}: {len(changed)} of {len(diff)} accounts differ")
    if len(changed):
        print(changed.to_string(index=False))


def cmd_report(args, settings: Settings) -> None:
    from workbench.billing import list_runs

    runs = list_runs(_engine(settings))
    row = runs[runs["id"] == args.run]
    if row.empty:
        raise BillingError(f"there is no billing run {args.run}")
    _write_report(_engine(settings), settings, args.run, row["period"].iloc[0])


def cmd_credit_note(args, settings: Settings) -> None:
    from workbench.billing import issue_credit_note

    engine = _engine(settings)
    number = issue_credit_note(engine, args.invoice, args.reason, _now(), reinvoice=args.reinvoice)
    print(f"credit note {number} issued for {args.invoice}"
          + ("; its period is reopened: the next pre-production and production runs invoice it again"
             if args.reinvoice else ""))
    _publish_invoices(engine, settings, [number])


def _mail(engine, settings: Settings, run_id: int | None = None, period: str | None = None) -> None:
    from workbench.mail import plan_deliveries, send_pending

    plan = plan_deliveries(engine, run_id=run_id) if run_id is not None else plan_deliveries(engine, period=period)
    print("   email: " + plan.summary().replace("\n", "\n   "))
    report = send_pending(engine, settings, _now())
    where = settings.smtp_url or settings.outbox_dir
    print(f"   email via {where}: " + report.summary().replace("\n", "\n   "))


def cmd_mail(args, settings: Settings) -> None:
    if args.run is None and args.period is None and not args.retry:
        raise BillingError("give --run N or --period YYYY-MM (or --retry to send what is pending)")
    engine = _engine(settings)
    if args.retry:
        from workbench.mail import send_pending

        print(send_pending(engine, settings, _now()).summary())
        return
    if args.run is not None:
        from workbench.billing import list_runs

        runs = list_runs(engine)
        if not ((runs["id"] == args.run) & (runs["kind"] == "production")).any():
            raise BillingError(f"there is no production run {args.run}")
    _mail(engine, settings, args.run, args.period)


def _sepa(engine, settings: Settings, period: str | None, force: bool = False) -> None:
    from workbench.sepa import generate_direct_debits

    result = generate_direct_debits(engine, settings, _now(), period=period, force=force)
    print(f"   SEPA: {result.message}")
    for row in result.rejected.itertuples(index=False) if len(result.rejected) else []:
        print(f"   left out: {row.invoice_number} ({row.account_number}): {row.reason}")


def cmd_sepa(args, settings: Settings) -> None:
    _sepa(_engine(settings), settings, args.period, args.force)


def cmd_production_notebook(args, settings: Settings) -> None:
    from workbench.production import ProductionError, run_notebook

    config = args.config or os.environ.get("WORKBENCH_CONFIG") or ("workbench.toml" if Path("workbench.toml").exists()
                                                                    else None)
    try:
        path = run_notebook(args.run, args.period, not args.no_deliver, settings,
                            config_file=str(Path(config).resolve()) if config else None)
    except ProductionError as exc:
        raise BillingError(str(exc)) from None
    print(f"production notebook executed: {path} (also under audit/{args.period}/ in the FTP space)")


def cmd_demo(args, settings: Settings) -> None:
    """Load the sample operator and its month of calls, then rate the month."""
    from workbench.integration import load_cdr_files
    from workbench.ratings import rate_period
    from workbench.reference import load_reference

    if args.fresh and settings.database_url.startswith("sqlite:///"):
        db = Path(settings.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        # the demo's own outputs go too, when they are the embedded defaults (never a configured place)
        defaults = Settings()
        for mine, default in ((settings.storage_url, defaults.storage_url), (settings.outbox_dir, defaults.outbox_dir),
                              (str(Path(settings.output_dir) / "reports"), str(Path(defaults.output_dir) / "reports"))):
            if mine == default and Path(mine).is_dir():
                shutil.rmtree(mine)
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
    from workbench.billing import RunOptions, default_dates

    invoice_date, due_date = default_dates(Period.parse(args.period), settings)
    print(f"== pre-production billing {args.period}")
    run_id = _preprod(engine, settings, RunOptions(args.period, invoice_date, due_date))
    print(f"== production billing {args.period} (promoting run {run_id})")
    summary = _production(engine, settings, run_id)
    print(f"== delivery and direct debits {args.period}")
    if summary.invoices:
        _mail(engine, settings, run_id=summary.run_id)
    _sepa(engine, settings, args.period)
    print(f"== outputs: database {settings.database_url}; reports in {Path(settings.output_dir) / 'reports'}; "
          f"FTP space {settings.storage_url}; emails {settings.smtp_url or settings.outbox_dir}")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


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
    p.add_argument("--customers", type=_positive, default=200)
    p.add_argument("--calls", type=_positive, default=200_000)
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

    def run_options(p):
        p.add_argument("--period", required=True, help="YYYY-MM")
        p.add_argument("--invoice-date", help="YYYY-MM-DD (default: the day after the period)")
        p.add_argument("--due-date", help="YYYY-MM-DD (default: invoice date + payment_days)")
        p.add_argument("--customers", default="all", help="all, group:NAME or accounts:C1,C2")
        p.add_argument("--advance", action="store_true", help="recurring items in advance (default: arrears)")
        p.add_argument("--pdfs", action="store_true", help="render draft PDFs")

    p = sub.add_parser("preprod", help="pre-production (test) billing: drafts and the control report")
    run_options(p)
    p.set_defaults(func=cmd_preprod)

    p = sub.add_parser("production", help="issue the invoices of a reviewed pre-production run")
    p.add_argument("--run", type=int, required=True)
    p.set_defaults(func=cmd_production)

    p = sub.add_parser("production-notebook",
                       help="run notebooks/04_production.ipynb headless (papermill), keeping it as the audit trail")
    p.add_argument("--run", type=int, required=True, help="the pre-production run to promote")
    p.add_argument("--period", required=True, help="YYYY-MM, checked against the run")
    p.add_argument("--no-deliver", action="store_true", help="do not email the invoices")
    p.set_defaults(func=cmd_production_notebook)

    p = sub.add_parser("documents", help="render and store the PDFs of a run that are not stored yet")
    p.add_argument("--run", type=int, help="a billing run")
    p.add_argument("--invoice", nargs="+", help="invoice or credit note numbers")
    p.add_argument("--annex", action="store_true", help="add the call detail annex (setting call_detail_annex)")
    p.set_defaults(func=cmd_documents)

    p = sub.add_parser("mail", help="email issued invoices to their recipients (resumable)")
    p.add_argument("--run", type=int, help="a production run")
    p.add_argument("--period", help="YYYY-MM: the period's issued invoices")
    p.add_argument("--retry", action="store_true", help="only send the deliveries still pending or failed")
    p.set_defaults(func=cmd_mail)

    p = sub.add_parser("sepa", help="generate the SEPA direct debit file of issued invoices not yet debited")
    p.add_argument("--period", help="YYYY-MM (default: every invoice not yet debited)")
    p.add_argument("--force", action="store_true", help="debit again invoices already in a file (needs --period)")
    p.set_defaults(func=cmd_sepa)

    p = sub.add_parser("runs", help="list billing runs")
    p.add_argument("--period")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("delete-run", help="delete a pre-production run and its drafts")
    p.add_argument("run", type=int)
    p.set_defaults(func=cmd_delete_run)

    p = sub.add_parser("compare", help="compare two runs account by account")
    p.add_argument("run_a", type=int)
    p.add_argument("run_b", type=int)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="write the control report of a run")
    p.add_argument("run", type=int)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("credit-note", help="cancel an issued invoice by a credit note")
    p.add_argument("invoice", help="the invoice number, e.g. F2026-000123")
    p.add_argument("--reason", required=True)
    p.add_argument("--reinvoice", action="store_true",
                   help="reopen the invoice's period: its calls and charges are billed again by the next runs")
    p.set_defaults(func=cmd_credit_note)

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
