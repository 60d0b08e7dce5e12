"""The production job: issue a reviewed pre-production run, then store, deliver and collect.

:func:`promote` issues the invoices of a reviewed run (legal numbers, in one transaction; see
:mod:`workbench.billing.runs`) and stores their PDFs. :func:`production` is the whole job that the
production notebook runs headless (papermill): it checks its parameters, promotes, stores the
PDFs, emails them (when ``deliver``), generates the SEPA file and writes the export for the
approved platform (:mod:`workbench.jobs.einvoicing`). Each step only does what is
missing, so running the job again after a failure finishes it without issuing, storing or
sending anything twice.
"""

from __future__ import annotations

import functools
import getpass
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from workbench.billing import RunSummary
from workbench.billing import production as issue_run
from workbench.billing.approvals import approved_run, check_approved
from workbench.config import Settings
from workbench.errors import InputError, RefusedError, UnavailableError
from workbench.jobs.delivery import DeliveryResult, deliver
from workbench.jobs.documents import PublishReport, publish_documents, storing_issued
from workbench.jobs.einvoicing import PlatformExport, export_einvoices
from workbench.jobs.sepa import DirectDebitRun, generate_direct_debits
from workbench.jobs.workspace import utc_now
from workbench.money import format_money
from workbench.period import Period
from workbench.reads.balance import PeriodBalance, balance_anomalies
from workbench.reads.runs import period_balance, run_row
from workbench.storage import Storage


@dataclass(frozen=True)
class Promotion:
    """A promoted run (``run.invoices`` is 0 when nothing was issued) and its final PDFs."""

    run: RunSummary
    documents: PublishReport | None
    balance: PeriodBalance | None = None


@dataclass(frozen=True)
class ProductionResult:
    """What the production job did, step by step (``None``: the step did not run)."""

    source_run_id: int
    period: str
    promotion: Promotion
    delivery: DeliveryResult | None = None
    direct_debits: DirectDebitRun | None = None
    platform: PlatformExport | None = None

    def report(self) -> ProductionSummary:
        """The summary of what the job did (:class:`ProductionSummary`)."""
        run, documents = self.promotion.run, self.promotion.documents
        values: dict = {"run": self.source_run_id, "period": self.period, "production_run": run.run_id or None,
                        "invoices": run.invoices, "total_incl_cents": run.total_incl_cents,
                        "net_payable_cents": run.net_payable_cents, "numbers": tuple(run.numbers or ()),
                        "message": run.message, "left_undone": tuple(self.left_undone)}
        balance = self.promotion.balance
        if balance is not None:
            values["balance"] = "closes" if balance.closed else "; ".join(balance_anomalies(balance))
        if documents is not None:
            values["pdfs_stored"] = len(documents.stored) + len(documents.already)
            values["pdfs_not_stored"] = tuple(sorted(documents.failed.items()))
        if self.delivery is not None:
            sent = self.delivery.sent
            planned = self.delivery.planned.anomalies if self.delivery.planned is not None else []
            values["emails_sent"] = len(sent.sent)
            values["emails_to_send"] = sent.pending
            values["emails_not_sent"] = tuple(
                [(f.invoice_number, f.recipient, f"refused, tried again by `workbench mail --retry`: {f.error}")
                 for f in sent.failed]
                + [(f.invoice_number, f.recipient, f"given up after {f.attempts} attempts: {f.error}")
                   for f in sent.gave_up]
                + [(f.invoice_number, f.recipient, f"possibly sent: {f.error or 'run interrupted'}")
                   for f in sent.uncertain]
                + [(str(p.key or ""), "", p.message) for p in [*planned, *sent.anomalies]])
        if self.direct_debits is not None:
            debits = self.direct_debits
            values.update(sepa_file=debits.path, sepa_debits=debits.transactions, sepa_total_cents=debits.total_cents,
                          sepa_message=debits.message)
            if len(debits.rejected):
                values["sepa_left_out"] = tuple(
                    (str(r.invoice_number), "" if pd.isna(r.account_number) else str(r.account_number),
                     0 if pd.isna(r.net_payable_cents) else int(r.net_payable_cents), str(r.reason))
                    for r in debits.rejected.itertuples(index=False))
        if self.platform is not None:
            values.update(einvoicing_folder=self.platform.folder, einvoiced=len(self.platform.einvoiced),
                          ereported=len(self.platform.ereported),
                          einvoicing_left_out=tuple((str(n), str(r)) for n, r in self.platform.left_out.items())
                          + tuple((str(p), f"not stored: {e}") for p, e in self.platform.failed.items()))
        return ProductionSummary(**values)

    @property
    def left_undone(self) -> list[str]:
        """What the job left undone, one line per kind with its count (empty when all is done):
        PDFs not stored, emails not sent (to send, given up, possibly sent), invoices left out of
        the SEPA file."""
        left = []
        documents = self.promotion.documents
        if documents is not None and documents.failed:
            total = len(documents.stored) + len(documents.already) + len(documents.failed)
            left.append(f"{len(documents.failed)} of {total} PDFs not stored")
        if self.delivery is not None:
            sent = self.delivery.sent
            for count, text in ((sent.pending, "emails to send"), (len(sent.gave_up), "emails given up"),
                                (len(sent.uncertain), "emails possibly sent (check, then send them again or not)")):
                if count:
                    left.append(f"{count} {text}")
        if self.direct_debits is not None and len(self.direct_debits.problems):
            left.append(f"{len(self.direct_debits.problems)} invoices left out of the SEPA file")
        if self.platform is not None and (self.platform.left_out or self.platform.failed):
            left.append(f"{len(self.platform.left_out)} documents left out of the platform export, "
                        f"{len(self.platform.failed)} of its files not stored")
        return left


@dataclass(frozen=True)
class ProductionSummary:
    """What the production job did, for people (the production notebook) and the cron log (the
    command line), built once by :meth:`ProductionResult.report`; amounts in integer cents, written
    by :meth:`lines` with :func:`workbench.money.format_money` in a locale.

    ``emails_not_sent``: (invoice or account, recipient or ``""``, why) for each delivery failed,
    given up, possibly sent or impossible (a customer without invoice recipient);
    ``sepa_left_out``: (invoice, account, net payable cents, why) for each invoice of the period
    left out of the SEPA file; ``pdfs_not_stored``: (path, why)."""

    run: int
    period: str
    production_run: int | None
    invoices: int
    total_incl_cents: int
    net_payable_cents: int
    numbers: tuple[str, ...] = ()
    message: str = ""
    balance: str | None = None
    pdfs_stored: int | None = None
    pdfs_not_stored: tuple[tuple[str, str], ...] = ()
    emails_sent: int | None = None
    emails_to_send: int = 0
    emails_not_sent: tuple[tuple[str, str, str], ...] = ()
    sepa_file: str | None = None
    sepa_debits: int | None = None
    sepa_total_cents: int = 0
    sepa_message: str = ""
    sepa_left_out: tuple[tuple[str, str, int, str], ...] = ()
    einvoicing_folder: str | None = None
    einvoiced: int | None = None
    ereported: int = 0
    einvoicing_left_out: tuple[tuple[str, str], ...] = ()
    left_undone: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """Plain JSON values (how the executed notebook hands the summary to the command line)."""
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ProductionSummary:
        """The summary :meth:`to_dict` wrote (lists back to tuples)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                      for k, v in values.items() if k in names})

    def lines(self, locale: str = "en") -> list[tuple[str, list[str]]]:
        """The summary as sections (title, lines) written for people in ``locale``."""
        money = functools.partial(format_money, locale=locale)
        head = [f"pre-production run {self.run}, period {self.period}"]
        if self.invoices:
            numbers = f" ({self.numbers[0]} to {self.numbers[-1]})" if self.numbers else ""
            head.append(f"production run {self.production_run}: {self.invoices} invoices issued{numbers}")
            head.append(f"total billed {money(self.total_incl_cents)}, net payable {money(self.net_payable_cents)}")
        if self.message:
            head.append(self.message)
        if self.balance:
            head.append(f"period balance: {self.balance}")
        sections = [("Invoices", head)]
        if self.pdfs_stored is not None:
            pdfs = [f"{self.pdfs_stored} PDFs stored"] + [f"not stored: {path}: {why}"
                                                         for path, why in self.pdfs_not_stored]
            sections.append(("PDFs", pdfs))
        if self.emails_sent is not None:
            emails = [f"{self.emails_sent} emails sent, {len(self.emails_not_sent)} not sent"
                      + (f", {self.emails_to_send} still to send" if self.emails_to_send else "")]
            emails += [f"not sent: {what}" + (f" to {to}" if to else "") + f": {why}"
                       for what, to, why in self.emails_not_sent]
            sections.append(("Emails", emails))
        if self.sepa_debits is not None:
            sepa = [f"{self.sepa_debits} direct debits, {money(self.sepa_total_cents)}"
                    + (f", file {self.sepa_file}" if self.sepa_file else "")]
            if self.sepa_message:
                sepa.append(self.sepa_message)
            sepa += [f"left out: {number} (account {account}, {money(cents)}): {why}"
                     for number, account, cents, why in self.sepa_left_out]
            sections.append(("SEPA direct debits", sepa))
        if self.einvoiced is not None:
            platform = [f"{self.einvoiced} Factur-X documents for the approved platform, {self.ereported} e-reported"
                        + (f", in {self.einvoicing_folder}/" if self.einvoicing_folder else "")]
            platform += [f"left out: {what}: {why}" for what, why in self.einvoicing_left_out]
            sections.append(("E-invoicing", platform))
        sections.append(("Left undone", list(self.left_undone) or ["nothing"]))
        return sections

    def text(self, locale: str = "en") -> str:
        """:meth:`lines` as plain text, one section after another (for the log)."""
        out = []
        for title, lines in self.lines(locale):
            out.append(f"{title}:")
            out += [f"  {line}" for line in lines]
        return "\n".join(out)


def check_balance(engine: Engine, settings: Settings, run_id: int, balance_note: str | None = None) -> PeriodBalance:
    """The period balance of run ``run_id`` (:mod:`workbench.reads.balance`);
    :class:`~workbench.errors.RefusedError` when it does not close and no ``balance_note``
    explains why (the note is then kept with the production run)."""
    balance = period_balance(engine, run_id, settings)
    if not balance.closed and not (balance_note or "").strip():
        raise RefusedError(f"run {run_id}: the period balance of {balance.period} does not close: "
                           + "; ".join(balance_anomalies(balance)) + ". Find where the calls went (the report's "
                           "'Period balance' sheet), or issue the run with a note that explains it "
                           "(--balance-note TEXT)", code="balance_not_closed")
    return balance


def promote(engine: Engine, settings: Settings, run_id: int, now: datetime | None = None,
            balance_note: str | None = None, launched_by: str | None = None,
            force_reason: str | None = None) -> Promotion:
    """Issue the invoices of pre-production run ``run_id`` and store their PDFs, once a reviewer
    approved it (:mod:`workbench.billing.approvals`; else refused, code ``not_approved``, unless
    ``force_reason`` is given: it is kept with the run, by ``launched_by``) and its period balance
    closes (:func:`check_balance`; else refused, unless ``balance_note`` explains it).
    ``launched_by``: who issues it (default: the system user).

    :class:`~workbench.errors.RefusedError` when the run is not a reviewed pre-production run, its
    inputs changed since the review or its invoice date is before the last issued invoice of the
    year (numbers follow the dates), :class:`~workbench.errors.ConfigError` for a storage URL that
    cannot be used (nothing is issued); :class:`~workbench.errors.UnavailableError` when the PDFs
    cannot be stored after the invoices were issued (they stay issued: the message says how to
    store their PDFs once the FTP space is back)."""
    Storage(settings.storage_url)  # a storage URL that cannot be used stops here, before any number is taken
    now, launched_by = now or utc_now(), launched_by or getpass.getuser()
    balance = check_balance(engine, settings, run_id, balance_note)
    with engine.begin() as connection:
        check_approved(connection, run_id, launched_by, now, force_reason)
    summary = issue_run(engine, run_id, settings, now, created_by=launched_by,
                        balance_note=None if balance.closed else balance_note)
    if not summary.run_id:
        return Promotion(summary, None, balance)
    with storing_issued("The invoices are issued", f"their PDFs with `workbench documents --run {summary.run_id}`"):
        documents = publish_documents(engine, settings, run_id=summary.run_id)
    return Promotion(summary, documents, balance)


def run_number(run_id) -> int:
    """The production job's ``run_id`` parameter as a run number; else
    :class:`~workbench.errors.InputError` (checked before it is used anywhere, a path included)."""
    try:
        return int(run_id)
    except (TypeError, ValueError):
        raise InputError(f"run_id must be the number of a pre-production run, not {run_id!r}",
                         source="parameter run_id", code="bad_parameter") from None


def check_parameters(engine: Engine, run_id, period) -> tuple[int, str]:
    """The production job's parameters, checked: ``run_id`` is a pre-production run of
    ``period``; else :class:`~workbench.errors.InputError` saying what is wrong."""
    run_id, period = run_number(run_id), str(Period.parse(str(period)))
    with engine.connect() as connection:
        run = run_row(connection, run_id)
    if run["kind"] != "preprod":
        raise InputError(f"run {run_id} is a production run; give the pre-production run to promote",
                         source="parameter run_id", code="bad_parameter")
    if run["period"] != period:
        raise InputError(f"run {run_id} bills {run['period']}, not {period}", source="parameter period",
                         code="bad_parameter")
    return run_id, period


def production(engine: Engine, settings: Settings, run_id, period, deliver_invoices: bool = True,
               now: datetime | None = None, balance_note: str | None = None, approved: bool = False,
               launched_by: str | None = None, force_reason: str | None = None) -> ProductionResult:
    """Run the whole production job for pre-production run ``run_id`` of ``period`` (see the
    module docstring); with ``approved`` (and no ``run_id``), for the approved run of the period
    (:func:`~workbench.billing.approvals.approved_run`). The run must be approved unless
    ``force_reason`` says why not (:func:`promote`). Raises :class:`~workbench.errors.InputError`
    for bad parameters, :class:`~workbench.errors.RefusedError` when the run cannot be issued
    (not approved, no approved run of the period...) and
    :class:`~workbench.errors.UnavailableError` when PDFs could not be stored or emails not all
    sent (run the job again once the service is back)."""
    now = now or utc_now()
    if approved and run_id in (None, ""):
        run_id = approved_run(engine, str(Period.parse(str(period))))
    run_id, period = check_parameters(engine, run_id, period)
    promotion = promote(engine, settings, run_id, now, balance_note, launched_by, force_reason)
    result = ProductionResult(run_id, period, promotion)
    if not promotion.run.run_id:
        return result
    documents = promotion.documents
    if documents.failed:
        total = len(documents.stored) + len(documents.already) + len(documents.failed)
        raise UnavailableError(f"{len(documents.failed)} of {total} PDFs could not be stored (run `workbench "
                               f"documents --run {promotion.run.run_id}` again): {documents.failed}")
    delivery = None
    if deliver_invoices:
        try:
            delivery = deliver(engine, settings, run_id=promotion.run.run_id, now=now)
        except UnavailableError as exc:  # e.g. another mail run in progress: the emails wait for a re-run
            raise UnavailableError(f"email delivery not started: {exc} (run this job or `workbench mail --retry` "
                                   "again)", code=exc.code) from None
        if delivery.sent.stopped:
            raise UnavailableError(f"email delivery stopped: {delivery.sent.stopped} (run `workbench mail --retry`)")
    debits = generate_direct_debits(engine, settings, now, period=period)
    platform = export_einvoices(engine, settings, period)
    return ProductionResult(run_id, period, promotion, delivery, debits, platform)
