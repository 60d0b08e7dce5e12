"""The ``workbench`` command line, for operations and the demo.

Exit statuses: 0, done; 2, an error (bad input, a refusal, a set-up or a server that cannot be
used: nothing of it is half-done); 3, the command did what it could but left work undone (PDFs not
stored, emails not sent, given up or possibly sent, invoices left out of the SEPA file), each
counted on stderr with the way to finish it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from workbench import jobs
from workbench.config import Settings, load_settings, redacted
from workbench.errors import InputError, Problem, WorkbenchError
from workbench.jobs.cluster import HERE
from workbench.money import PRICE_SCALE, format_money, minutes
from workbench.period import Period
from workbench.reads.runs import compare_runs, list_runs

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"

#: exit statuses (see the module docstring)
DONE, ERROR, INCOMPLETE = 0, 2, 3


def _money(cents: int) -> str:
    return format_money(int(cents))


def _table(frame) -> str:
    """A frame as text, a missing value written ``-`` (never ``None``, ``NaN`` or ``<NA>``)."""
    return frame.astype(object).where(frame.notna(), "-").to_string(index=False)


def _problems(problems: list[Problem], indent: str = "   ") -> None:
    for problem in problems:
        print(f"{indent}{problem}")


def _database(settings: Settings):
    """The workspace's database for a command that uses one: never created here (a mistyped URL is
    refused, see :func:`workbench.jobs.open_database`); ``db-upgrade``, ``load-reference`` and
    ``demo`` create it."""
    return jobs.open_database(settings, create=False)


def cmd_db_upgrade(args, settings: Settings) -> None:
    jobs.open_database(settings)
    print(f"database {redacted(settings.database_url)} is up to date")


def cmd_sample(args, settings: Settings) -> None:
    from workbench.sample import generate_operator

    counts = generate_operator(Path(args.out), seed=args.seed, customers=args.customers, calls=args.calls)
    print(f"sample operator written to {args.out}: {counts}")


def _print_reference(load: jobs.ReferenceLoad, indent: str = "") -> None:
    print(indent + "reference data loaded: " + ", ".join(f"{k} {v}" for k, v in load.counts.items()))
    if load.reprocessed.examined:
        _print_reprocessing(load.reprocessed, indent)


def _print_reprocessing(result, indent: str = "") -> None:
    print(f"{indent}rejected CDR records pending a reference fix: {result.examined} re-processed, "
          f"{result.accepted} now accepted as calls, {result.duplicates} duplicates of stored calls, "
          f"{result.pending} still pending")
    if result.accepted:
        print(f"{indent}rate their periods again to price them (workbench rate --period YYYY-MM)")


def cmd_reprocess_rejects(args, settings: Settings) -> None:
    _print_reprocessing(jobs.reprocess_rejects(_database(settings), settings, files=args.files,
                                               mapping=args.mapping, times=args.times))


def cmd_load_reference(args, settings: Settings) -> None:
    _print_reference(jobs.load_reference(jobs.open_database(settings), settings, args.folder))


def _print_loads(load: jobs.CdrLoad) -> None:
    for r in load.files:
        if r.status == "skipped":
            print(f"   {r.file}: already loaded, skipped")
            continue
        reasons = ", ".join(f"{k} {v}" for k, v in r.by_reason.items()) or "none"
        print(f"   {r.file} ({r.format}): {r.records} records, {r.accepted} accepted, "
              f"{r.rejected} rejected ({reasons})")


def cmd_load_cdrs(args, settings: Settings) -> None:
    _print_loads(jobs.load_cdrs(_database(settings), settings, args.files, args.format, progress=True,
                                mapping=args.mapping, times=args.times))


def _print_rating(summary) -> None:
    print(f"   period {summary.period}: {summary.calls} calls to rate, {summary.rated} rated, "
          f"{summary.errors} not rated, {summary.kept_billed} already billed (kept), rated {summary.where}")
    if summary.errors_by_reason:
        print("   not rated: " + ", ".join(f"{k} {v}" for k, v in summary.errors_by_reason.items()))
    print(f"   consumption: {format_money(summary.amount_units, scale=PRICE_SCALE)} excl. VAT")
    table = summary.by_zone.assign(
        amount=summary.by_zone["amount_units"].map(lambda u: format_money(int(u), scale=PRICE_SCALE)),
        minutes=summary.by_zone["seconds"].map(minutes),
    )[["zone_code", "band", "calls", "minutes", "amount"]]
    print(_table(table))


def cmd_rate(args, settings: Settings) -> None:
    _print_rating(jobs.rate(_database(settings), settings, args.period, progress=True))


def _signed(cents: int) -> str:
    """A difference in cents written with its sign: ``+€0.30``, ``-€1.20``, ``€0.00``."""
    return ("+" if cents > 0 else "") + _money(cents)


def cmd_what_if(args, settings: Settings) -> None:
    report = jobs.what_if(_database(settings), settings, args.period, args.plan)
    result, inputs = report.result, report.inputs
    print(f"   what-if {result.period} under {report.plan}: {len(inputs.calls)} calls, {len(inputs.billed)} rated "
          f"({inputs.invoiced_calls} on issued invoices), rated {report.where}; nothing stored")
    print(f"   consumption billed {_money(result.billed_cents)}, under the candidate plan "
          f"{_money(result.candidate_cents)} (excl. VAT)")
    print(f"   difference: {_signed(result.difference_cents)}")
    zones = result.zones[result.zones["difference_cents"] != 0]
    if len(zones):
        print("   by zone:")
        print(_table(zones.assign(billed=zones["billed_cents"].map(_money),
                                  candidate=zones["candidate_cents"].map(_money),
                                  difference=zones["difference_cents"].map(_signed))
                     [["zone_code", "billed_calls", "billed", "candidate", "difference"]]
                     .rename(columns={"zone_code": "zone", "billed_calls": "calls"})))
        affected = result.most_affected(args.top)
        affected = affected[affected["difference_cents"] != 0]
        print(f"   customers most affected ({len(affected)} of "
              f"{int((result.customers['difference_cents'] != 0).sum())} changed):")
        print(_table(affected.assign(billed=affected["billed_cents"].map(_money),
                                     candidate=affected["candidate_cents"].map(_money),
                                     difference=affected["difference_cents"].map(_signed))
                     [["account_number", "name", "billed_calls", "billed", "candidate", "difference"]]
                     .rename(columns={"account_number": "account", "name": "customer", "billed_calls": "calls"})))
    if len(result.errors):
        reasons = ", ".join(f"{k} {v}" for k, v in result.errors["reason"].value_counts().sort_index().items())
        print(f"warning: {len(result.errors)} rated calls cannot be rated under the candidate plan ({reasons}); "
              f"counted at {_money(0)}: {result.errors['message'].iloc[0]}", file=sys.stderr)


def _print_publish(report: jobs.PublishReport, what: str, settings: Settings, finish: str = "") -> list[str]:
    """Prints what was stored; returns what is left undone (the PDFs not stored), ``finish``
    saying how to store them."""
    rendered = f", rendered {report.where}" if report.rendered and report.where != HERE else ""
    print(f"   PDFs of {what}: {len(report.stored)} stored, {len(report.already)} already stored, "
          f"{len(report.failed)} failed, in {redacted(settings.storage_url)}{rendered}")
    for path, error in report.failed.items():
        print(f"   failed: {path}: {error}")
    if not report.failed:
        return []
    total = len(report.stored) + len(report.already) + len(report.failed)
    return [f"{len(report.failed)} of {total} PDFs of {what} not stored"
            + (f": store them with `{finish}` once the FTP space is back" if finish else "")]


def _print_preprod(result: jobs.PreprodResult, settings: Settings) -> list[str]:
    run = result.run
    for rating in result.rated_first:
        print(f"   calls loaded but not rated: {rating.period} rated first")
        _print_rating(rating)
    numbers = f" ({run.numbers[0]} to {run.numbers[1]})" if run.numbers else ""
    print(f"   pre-production run {run.run_id} for {run.period}: {run.invoices} draft invoices{numbers}, total "
          f"{_money(run.total_incl_cents)}, net payable {_money(run.net_payable_cents)}")
    print(f"   control report: {result.report.path} (and {result.report.stored_as} in the FTP space)")
    if result.mailing is not None:
        _print_mailing(result.mailing)
    left = []
    if result.documents is not None:
        left = _print_publish(result.documents, f"run {run.run_id}", settings,
                              f"workbench documents --run {run.run_id}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return left


def cmd_preprod(args, settings: Settings) -> list[str]:
    options = jobs.run_options(settings, args.period, args.invoice_date, args.due_date, args.customers,
                               args.advance, args.pdfs)
    return _print_preprod(jobs.preprod(_database(settings), settings, options), settings)


def cmd_documents(args, settings: Settings) -> list[str]:
    if (args.run is None) == (not args.invoice):
        raise InputError("give --run N or --invoice NUMBER...", code="nothing_named")
    engine = _database(settings)
    annex = True if args.annex else None
    if args.invoice:
        return _print_publish(jobs.publish_invoices(engine, settings, args.invoice, annex), "the invoices", settings,
                              "workbench documents --invoice " + " ".join(args.invoice))
    return _print_publish(jobs.publish_run(engine, settings, args.run, annex), f"run {args.run}", settings,
                          f"workbench documents --run {args.run}")


def _print_promotion(promotion: jobs.Promotion, settings: Settings) -> list[str]:
    run = promotion.run
    if run.invoices:
        print(f"   production run {run.run_id} for {run.period}: {run.message}; total "
              f"{_money(run.total_incl_cents)}, net payable {_money(run.net_payable_cents)}")
    else:
        print("   " + (run.message or f"nothing issued for {run.period}"))
    if promotion.balance is not None and not promotion.balance.closed:
        print(f"   period balance does not close, issued with the note kept with run {run.run_id}")
    if promotion.documents is not None:
        return _print_publish(promotion.documents, f"run {run.run_id}", settings,
                              f"workbench documents --run {run.run_id}")
    return []


def _run_to_issue(args, engine) -> int:
    """``--run N``, or with ``--approved`` the approved run of ``--period``."""
    if (args.run is None) == (not args.approved):
        raise InputError("give --run N or --approved --period YYYY-MM", code="nothing_named")
    if args.approved:
        if not args.period:
            raise InputError("--approved takes the approved run of a period: give --period YYYY-MM",
                             code="nothing_named")
        return jobs.approved_run(engine, args.period)
    return args.run


def cmd_production(args, settings: Settings) -> list[str]:
    engine = _database(settings)
    return _print_promotion(jobs.promote(engine, settings, _run_to_issue(args, engine), balance_note=args.balance_note,
                                         force_reason=args.force), settings)


def cmd_approve(args, settings: Settings) -> None:
    approval = jobs.approve_run(_database(settings), settings, args.run, getpass.getuser(), args.comment)
    print(f"run {approval.run_id} approved by {approval.approved_by} at {approval.approved_at:%Y-%m-%d %H:%M} UTC")


def cmd_add_reviewer(args, settings: Settings) -> None:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise InputError("the two passwords differ", code="bad_password")
    path = jobs.add_reviewer(settings, args.name, password)
    print(f"reviewer {args.name} can log in to the dashboards (users file {path})")


def cmd_runs(args, settings: Settings) -> None:
    runs = list_runs(_database(settings), args.period)
    if runs.empty:
        print("no billing runs")
        return
    runs["total"] = runs["total_incl_cents"].map(_money)
    signed = jobs.run_approvals(_database(settings))
    signed = signed[~signed["forced"].astype(bool)].drop_duplicates("run_id")  # newest first: each run's latest
    runs["approved_by"] = runs["id"].map(dict(zip(signed["run_id"], signed["approved_by"], strict=True)))
    print(_table(runs[["id", "kind", "period", "status", "invoice_date", "invoices", "total", "source_run_id",
                       "created_by", "created_at", "approved_by"]]))


def cmd_delete_run(args, settings: Settings) -> None:
    print(f"run {args.run} deleted ({jobs.delete_run(_database(settings), settings, args.run)} drafts)")


def cmd_compare(args, settings: Settings) -> None:
    diff = compare_runs(_database(settings), args.run_a, args.run_b)
    changed = diff[diff["Status"] != "unchanged"]
    print(f"run {args.run_a} -> run {args.run_b}: {len(changed)} of {len(diff)} accounts differ")
    if len(changed):
        print(_table(changed))


def _print_mailing(mailing) -> None:
    if mailing.sent:
        print("   control report emailed to " + ", ".join(mailing.sent))
    if mailing.already:
        print("   control report already emailed to " + ", ".join(mailing.already) + " (not sent again)")


def cmd_report(args, settings: Settings) -> None:
    engine = _database(settings)
    report = jobs.write_report(engine, settings, args.run)
    print(f"   control report: {report.path} (and {report.stored_as} in the FTP space)")
    mailing = jobs.mail_report(engine, settings, report)
    _print_mailing(mailing)
    for warning in jobs.mailing_warnings(mailing, args.run):
        print(f"warning: {warning}", file=sys.stderr)


def cmd_credit_note(args, settings: Settings) -> list[str]:
    result = jobs.credit_note(_database(settings), settings, args.invoice, args.reason, args.reinvoice,
                              amount=args.amount)
    print(f"credit note {result.number} issued for {result.invoice_number}"
          + ("; its period is reopened: the next pre-production and production runs invoice it again"
             if result.reopened else ""))
    return _print_publish(result.documents, result.number, settings,
                          f"workbench documents --invoice {result.number}")


def _print_delivery(result: jobs.DeliveryResult) -> list[str]:
    """Prints what was planned, released and sent; returns what is left undone."""
    if result.planned is not None:
        print("   email: " + result.planned.summary().replace("\n", "\n   "))
    if result.released:
        print(f"   email: {len(result.released)} deliveries to send again at your request: "
              + ", ".join(f"{number} to {recipient} ({state})" for number, recipient, state in result.released))
    sent = result.sent
    print(f"   email via {result.transport}: " + sent.summary().replace("\n", "\n   "))
    if not (sent.left or sent.stopped):
        return []
    parts = [text for count, text in ((sent.pending, f"{sent.pending} to send"),
                                      (len(sent.gave_up), f"{len(sent.gave_up)} given up (`workbench mail --given-up` "
                                                          "sends them again)"),
                                      (len(sent.uncertain), f"{len(sent.uncertain)} possibly sent (check, then "
                                                            "`workbench mail --resend NUMBER` or "
                                                            "`--resend-uncertain`)")) if count]
    text = f"{sent.left} email deliver{'y' if sent.left == 1 else 'ies'} left: " + ", ".join(parts)
    if sent.stopped:
        text += "; the batch stopped before the end: run `workbench mail --retry` once the server is back"
    return [text]


def cmd_mail(args, settings: Settings) -> list[str]:
    if args.run is None and args.period is None and not (args.retry or args.resend or args.given_up
                                                         or args.resend_uncertain):
        raise InputError("give --run N or --period YYYY-MM (or --retry to send what is pending, --resend NUMBER, "
                         "--given-up or --resend-uncertain)", code="nothing_named")
    return _print_delivery(jobs.deliver(_database(settings), settings, args.run, args.period, args.retry,
                                        resend=args.resend, given_up=args.given_up,
                                        uncertain=args.resend_uncertain))


def _print_debits(result: jobs.DirectDebitRun) -> list[str]:
    """Prints the SEPA file made; returns what is left undone (invoices left out of it)."""
    print(f"   SEPA: {result.message}")
    _problems(result.problems, "   left out: ")
    left = len(result.problems)
    return [f"{left} invoice{'' if left == 1 else 's'} left out of the SEPA file, not debited: fix what is said "
            "above (e.g. the mandate), then run `workbench sepa` again"] if left else []


def cmd_sepa(args, settings: Settings) -> list[str]:
    return _print_debits(jobs.generate_direct_debits(_database(settings), settings, period=args.period,
                                                     force=args.force))


def _print_platform(result: jobs.PlatformExport, settings: Settings) -> list[str]:
    """Prints the platform export made; returns what is left undone (documents left out, files
    not stored)."""
    print(f"   e-invoicing: {len(result.einvoiced)} Factur-X documents for the approved platform and "
          f"{len(result.ereported)} e-reported, in {result.folder}/ of the FTP space {redacted(settings.storage_url)}")
    for number, reason in result.left_out.items():
        print(f"   left out: {number}: {reason}")
    for path, error in result.failed.items():
        print(f"   not stored: {path}: {error}")
    left = []
    if result.left_out:
        left.append(f"{len(result.left_out)} documents left out of the platform export of {result.period}: "
                    f"fix what is said above, then run `workbench einvoicing --period {result.period}` again")
    if result.failed:
        left.append(f"{len(result.failed)} files of the platform export not stored: run `workbench einvoicing "
                    f"--period {result.period}` again once the FTP space is back")
    return left


def cmd_einvoicing(args, settings: Settings) -> list[str]:
    engine = _database(settings)
    return _print_platform(jobs.export_einvoices(engine, settings, str(Period.parse(args.period))), settings)


def cmd_production_notebook(args, settings: Settings) -> list[str]:
    config = args.config or os.environ.get("WORKBENCH_CONFIG") or ("workbench.toml" if Path("workbench.toml").exists()
                                                                    else None)
    if (args.run is None) == (not args.approved):
        raise InputError("give --run N or --approved", code="nothing_named")
    done = jobs.run_production_notebook(args.run, args.period, not args.no_deliver, settings,
                                        config_file=str(Path(config).resolve()) if config else None,
                                        balance_note=args.balance_note, approved=args.approved,
                                        force_reason=args.force or "")
    print(f"production notebook executed: {done.path} (also under audit/{args.period}/ in the FTP space)")
    if done.summary is None:
        return []
    print(done.summary.text())
    return [f"{text} (see the executed notebook)" for text in done.summary.left_undone]


def cmd_demo(args, settings: Settings) -> list[str]:
    """The month on the sample operator: each step is one job, printed. Left undone: PDFs not
    stored and emails not sent (the sample's invoices left out of the SEPA file, for their revoked
    mandates, are part of the show)."""
    if args.fresh:
        jobs.clear_demo(settings)
    engine = jobs.open_database(settings)
    folder = Path(args.data)
    period = str(Period.parse(args.period))
    print(f"== reference data from {folder / 'reference'}")
    _print_reference(jobs.load_reference(engine, settings, folder / "reference"), "   ")
    print(f"== CDR files from {folder / 'cdrs'}")
    _print_loads(jobs.load_cdrs(engine, settings, jobs.cdr_files(folder / "cdrs"), progress=True))
    print(f"== rating {period}")
    _print_rating(jobs.rate(engine, settings, period, progress=True))
    print(f"== pre-production billing {period}")
    result = jobs.preprod(engine, settings, jobs.run_options(settings, period))
    left = _print_preprod(result, settings)
    print(f"== production billing {period} (promoting run {result.run.run_id}, without a reviewer's approval)")
    promotion = jobs.promote(engine, settings, result.run.run_id,
                             force_reason="the demo: the sample operator's month, issued without review")
    left += _print_promotion(promotion, settings)
    print(f"== delivery and direct debits {period}")
    if promotion.run.invoices:
        left += _print_delivery(jobs.deliver(engine, settings, run_id=promotion.run.run_id))
    _print_debits(jobs.generate_direct_debits(engine, settings, period=period))
    print(f"== e-invoicing {period}: the export for the approved platform")
    left += _print_platform(jobs.export_einvoices(engine, settings, period), settings)
    print(f"== outputs: database {redacted(settings.database_url)}; "
          f"reports in {Path(settings.output_dir) / 'reports'}; FTP space {redacted(settings.storage_url)}; "
          f"emails {redacted(settings.smtp_url) or settings.outbox_dir}")
    return left


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

    p = sub.add_parser("load-cdrs", help="load CDR files (native, Asterisk Master.csv, or any CSV with a mapping)")
    p.add_argument("files", nargs="+")
    p.add_argument("--format", default="auto", choices=["auto", "native", "asterisk"])
    p.add_argument("--mapping", metavar="FILE.toml",
                   help="read the files with this CSV mapping (see data/README.md), e.g. "
                        "data/mappings/freeswitch_cdr_csv.toml")
    p.add_argument("--times", choices=["local", "utc"],
                   help="Asterisk times in local time or UTC (usegmtime=yes); default: setting asterisk_times")
    p.set_defaults(func=cmd_load_cdrs)

    p = sub.add_parser("reprocess-rejects",
                       help="check again the CDR records rejected for an unknown line and store those now accepted")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="files loaded before rejects were kept pending: their unknown_line rejects are read again")
    p.add_argument("--mapping", metavar="FILE.toml", help="the CSV mapping the files were loaded with")
    p.add_argument("--times", choices=["local", "utc"], help="Asterisk times (default: setting asterisk_times)")
    p.set_defaults(func=cmd_reprocess_rejects)

    p = sub.add_parser("rate", help="rate (or re-rate) the unbilled calls of a period")
    p.add_argument("--period", required=True, help="YYYY-MM")
    p.set_defaults(func=cmd_rate)

    p = sub.add_parser("what-if", help="what a period would have cost under a candidate rate plan (nothing stored)")
    p.add_argument("--period", required=True, help="YYYY-MM")
    p.add_argument("--plan", required=True, metavar="PATH",
                   help="a folder of reference files (its rate plan files are read, e.g. data/sample/reference), "
                        "or a rates.csv that replaces the rates it lists")
    p.add_argument("--top", type=_positive, default=10, help="how many of the customers most affected to list")
    p.set_defaults(func=cmd_what_if)

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

    def force(p):
        p.add_argument("--force", metavar="REASON",
                       help="issue a run that no reviewer approved, saying why (kept with the run)")

    p = sub.add_parser("production", help="issue the invoices of an approved pre-production run")
    p.add_argument("--run", type=int, help="the pre-production run to issue")
    p.add_argument("--approved", action="store_true", help="the approved run of --period")
    p.add_argument("--period", help="YYYY-MM (with --approved)")
    p.add_argument("--balance-note", default="", metavar="TEXT",
                   help="issue a run whose period balance does not close, saying why (kept with the run)")
    force(p)
    p.set_defaults(func=cmd_production)

    p = sub.add_parser("approve", help="approve a pre-production run as the system user (four eyes: not its author)")
    p.add_argument("run", type=int)
    p.add_argument("--comment", default="", help="what was checked")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("add-reviewer", help="let a reviewer log in to the dashboards (or change their password)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=cmd_add_reviewer)

    p = sub.add_parser("production-notebook",
                       help="run notebooks/04_production.ipynb headless (papermill), keeping it as the audit trail")
    p.add_argument("--run", type=int, help="the pre-production run to promote")
    p.add_argument("--approved", action="store_true", help="promote the approved run of --period")
    force(p)
    p.add_argument("--period", required=True, help="YYYY-MM, checked against the run")
    p.add_argument("--no-deliver", action="store_true", help="do not email the invoices")
    p.add_argument("--balance-note", default="", metavar="TEXT",
                   help="issue a run whose period balance does not close, saying why (kept with the run)")
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
    p.add_argument("--resend", nargs="+", metavar="NUMBER",
                   help="send again the unsent deliveries of these invoices or credit notes: given up after "
                        "5 refusals, or possibly sent (the connection was lost before the server's reply)")
    p.add_argument("--given-up", action="store_true", help="send again every delivery given up after 5 refusals")
    p.add_argument("--resend-uncertain", action="store_true",
                   help="send again every delivery possibly sent (same Message-ID): check first that they were "
                        "not received")
    p.set_defaults(func=cmd_mail)

    p = sub.add_parser("sepa", help="generate the SEPA direct debit file of issued invoices not yet debited")
    p.add_argument("--period", help="YYYY-MM (default: every invoice not yet debited)")
    p.add_argument("--force", action="store_true", help="debit again invoices already in a file (needs --period)")
    p.set_defaults(func=cmd_sepa)

    p = sub.add_parser("einvoicing", help="export a period's Factur-X documents and e-reporting for the approved "
                                          "platform (einvoicing/<period>/ in the FTP space)")
    p.add_argument("--period", required=True, help="YYYY-MM: the billing period")
    p.set_defaults(func=cmd_einvoicing)

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
    p.add_argument("--amount", help="a partial credit note of this amount in euros including VAT, e.g. 12.00 "
                                    "(default: the whole invoice)")
    p.set_defaults(func=cmd_credit_note)

    p = sub.add_parser("demo", help="run the main job on the bundled sample data")
    p.add_argument("--data", default=str(SAMPLE))
    p.add_argument("--period", default="2026-10")
    p.add_argument("--fresh", action="store_true",
                   help="start from an empty embedded database, var/workbench.sqlite (refused for a configured one)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, database_url=args.database_url)
        left = args.func(args, settings) or []
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if len(exc.problems) > 1:  # the message sums them up; each is named
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        return ERROR
    for text in left:
        print(f"incomplete: {text}", file=sys.stderr)
    return INCOMPLETE if left else DONE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
