"""The SEPA direct debit job: reads the invoices to debit, writes the file, records the debits.

:func:`generate_direct_debits` selects the issued invoices (``kind`` invoice) with something to
collect that were issued payable by direct debit (``invoices.payment_means``, fixed at issue: an
invoice issued payable by transfer stays so when its customer signs a mandate later) and have no
``sepa_debits`` row yet: the
amount to collect is the net payable less what credit notes issued before the collection set
against the invoice (``collection_offset_cents``, see :mod:`workbench.billing.credit_notes`), so
an invoice cancelled in full before its collection is not debited and a partial credit note
lowers its debit. It takes
each customer's latest active mandate with its history (latest collection, for its 36-month
expiry; the reference and IBAN of that collection, for the amendments: each debit records the IBAN
it was made from) and the customer's postal address, and builds the file (:mod:`workbench.sepa`).

A file in the FTP space always matches the database, whatever stops a run:

1. the file is **recorded first**: ``sepa_files`` (status ``publishing``, with its XML) and its
   ``sepa_debits``, in one transaction (those invoices are debited from then on);
2. it is **published** under ``sepa/<year>/<month>/<message id>.xml`` (:mod:`workbench.storage`:
   written as ``<name>.part``, then renamed, so a partial file never has the final name), then
   marked ``published``;
3. every run first **reconciles** what an interrupted run left: a ``publishing`` file whose final
   file is there with its recorded XML is marked published, one whose file is missing (or
   differs) is stored again from its recorded XML; stray ``.part`` files under ``sepa/`` are
   removed; a file under ``sepa/`` that nothing records (left by a version that stored before
   recording) is reported, never removed (it may have gone to the bank).

So a run killed at any point never leads to a second file with the same debits. Runs take turns
(the ``sepa`` job lock, :mod:`workbench.db.locks`: a second run waits up to
:data:`LOCK_WAIT` for the first; the lock of a run that died is taken over).

An invoice is never debited twice unless ``force``: then the
invoices of the selection (a period or a list of invoice numbers is required) are debited again
in a new file and their earlier ``sepa_debits`` rows are kept, marked ``replaced_by_file_id`` (the
new file), so the history of every collection attempt stays.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, update

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.db.locks import LOCKED, JobLock, acquire, lock_table
from workbench.errors import ConfigError, InputError, Problem, UnavailableError
from workbench.jobs.workspace import utc_now
from workbench.money import format_money
from workbench.period import Period, local_time
from workbench.sepa import Creditor, DebitFile, PostalAddress, direct_debit_file, new_message_id, validate_version
from workbench.storage import Storage


def creditor_of(settings: Settings) -> Creditor:
    """The creditor of the settings ``sepa_creditor_name``, ``_iban``, ``_bic``, ``_id`` and its
    postal address ``sepa_creditor_street``, ``_postcode``, ``_town``, ``_country``;
    :class:`~workbench.errors.ConfigError` if they cannot be used."""
    address = PostalAddress.of(settings.sepa_creditor_street, None, settings.sepa_creditor_postcode,
                               settings.sepa_creditor_town, settings.sepa_creditor_country)
    try:
        return Creditor.of(settings.sepa_creditor_name, settings.sepa_creditor_iban, settings.sepa_creditor_bic,
                           settings.sepa_creditor_id, address)
    except InputError as exc:
        raise ConfigError(exc.message, source="SEPA settings") from None


@dataclass
class DirectDebitRun:
    """What :func:`generate_direct_debits` did. ``path`` is relative to the storage space (None
    when no file was written); ``debits`` has one row per debit written (invoice_number,
    account_number, amount_cents, mandate_reference, sequence_type, collection_date); ``rejected``
    one row per invoice left out (invoice_number, account_number, net_payable_cents, reason)."""

    message: str
    version: str
    path: str | None = None
    location: str | None = None
    message_id: str | None = None
    file_id: int | None = None
    transactions: int = 0
    total_cents: int = 0
    by_sequence: dict[str, tuple[int, int]] = field(default_factory=dict)
    debits: pd.DataFrame = field(default_factory=pd.DataFrame)
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)
    reconciled: list[str] = field(default_factory=list)  # what this run finished of interrupted runs
    unrecorded: list[str] = field(default_factory=list)  # files under sepa/ that nothing records

    @property
    def written(self) -> bool:
        return self.path is not None

    @property
    def problems(self) -> list[Problem]:
        """The invoices left out, as data problems (key: the invoice number)."""
        return [Problem("sepa", row.invoice_number, row.code,
                        f"account {row.account_number}: {row.reason}" if row.account_number else row.reason)
                for row in self.rejected.itertuples(index=False)] if len(self.rejected) else []

    @property
    def warnings(self) -> list[str]:
        """Files in the FTP space that nothing records, to be checked by a person."""
        return [f"{path} is in the FTP space but recorded by no SEPA run (left by an interrupted run of an "
                "earlier version?): check with the bank that it was not sent, then delete it"
                for path in self.unrecorded]


#: how long a run waits for another one to finish
LOCK_WAIT = 300.0


REJECTED_COLUMNS = ["invoice_number", "account_number", "net_payable_cents", "code", "reason"]


WRITTEN_COLUMNS = ["invoice_number", "account_number", "amount_cents", "mandate_reference", "sequence_type",
                   "collection_date"]


def _candidates(connection: Connection, period: str | None, numbers: list[str] | None,
                force: bool) -> tuple[pd.DataFrame, list[dict]]:
    """The invoices to debit (with their customer), and the named invoices that cannot be."""
    debited = (select(s.SepaDebit.invoice_id, s.SepaFile.message_id)  # current debits only
               .join(s.SepaFile, s.SepaFile.id == s.SepaDebit.file_id)
               .where(s.SepaDebit.replaced_by_file_id.is_(None)).subquery())
    notes = (select(s.Invoice.corrects_invoice_id.label("invoice_id"),
                    func.sum(s.Invoice.collection_offset_cents).label("credited_cents"))
             .where(s.Invoice.kind == "credit_note", s.Invoice.status == "issued",
                    s.Invoice.collection_offset_cents > 0)  # a negative offset never adds to a debit
             .group_by(s.Invoice.corrects_invoice_id).subquery())
    credited = func.coalesce(notes.c.credited_cents, 0)
    stmt = select(
        s.Invoice.id.label("invoice_id"), s.Invoice.number.label("invoice_number"), s.Invoice.customer_id,
        s.Customer.account_number, s.Customer.name.label("customer_name"), s.Invoice.net_payable_cents,
        credited.label("credited_cents"), s.Invoice.due_date, s.Invoice.currency, s.Invoice.status,
        s.Invoice.kind, s.Invoice.payment_means, debited.c.message_id.label("debited_in"),
        s.Customer.address_line1, s.Customer.address_line2, s.Customer.postcode, s.Customer.city,
        s.Customer.country,
    ).join(s.Customer, s.Customer.id == s.Invoice.customer_id).outerjoin(
        debited, debited.c.invoice_id == s.Invoice.id).outerjoin(
        notes, notes.c.invoice_id == s.Invoice.id).order_by(s.Invoice.number)
    if period is not None:
        stmt = stmt.where(s.Invoice.period == period)
    if numbers is not None:
        stmt = stmt.where(s.Invoice.number.in_(numbers))
    else:
        stmt = stmt.where(s.Invoice.status == "issued", s.Invoice.kind == "invoice",
                          s.Invoice.payment_means == "direct_debit", s.Invoice.net_payable_cents - credited > 0)
        if not force:
            stmt = stmt.where(debited.c.message_id.is_(None))
    found = read_frame(connection, stmt)
    if numbers is None:
        return found, []
    rejected = [{"invoice_number": n, "account_number": None, "net_payable_cents": None, "code": "unknown_invoice",
                 "reason": "unknown invoice" + (f" in period {period}" if period else "")}
                for n in numbers if n not in set(found["invoice_number"])]
    keep = []
    for row in found.to_dict("records"):
        code = reason = None
        if row["status"] != "issued" or row["kind"] != "invoice":
            code, reason = "not_issued", f"not an issued invoice ({row['status']} {row['kind'].replace('_', ' ')})"
        elif row["payment_means"] != "direct_debit":
            code, reason = "not_direct_debit", "issued payable by transfer, not by direct debit"
        elif int(row["net_payable_cents"]) - int(row["credited_cents"]) <= 0:
            code, reason = ("nothing_to_debit",
                            f"nothing to debit: net payable {format_money(int(row['net_payable_cents']))}"
                            + (f", {format_money(int(row['credited_cents']))} credited before collection"
                               if int(row["credited_cents"]) else ""))
        elif row["debited_in"] is not None and not pd.isna(row["debited_in"]) and not force:
            code, reason = ("already_debited",
                            f"already debited in SEPA file {row['debited_in']} (use force to debit it again)")
        if reason:
            rejected.append({"invoice_number": row["invoice_number"], "account_number": row["account_number"],
                             "net_payable_cents": int(row["net_payable_cents"]), "code": code, "reason": reason})
        else:
            keep.append(row)
    return pd.DataFrame(keep, columns=found.columns), rejected


def _with_mandates(connection: Connection, invoices: pd.DataFrame) -> pd.DataFrame:
    """``invoices`` with each customer's mandate (the latest active one; else the latest one, to
    say it is not active) and its history: whether it was collected before
    (``already_collected``: by another invoice, or by the system used before), its latest
    collection date (``last_collection_date``, for its expiry: here or, from
    ``mandates.last_collection_date``, by the system used before), and the reference and IBAN of
    its latest collection here (``previous_reference``, ``previous_iban``: under the mandate's
    ``original_reference`` too, for the amendments)."""
    customer_ids = sorted({int(c) for c in invoices["customer_id"]})
    mandates = read_frame(connection, select(
        s.Mandate.id, s.Mandate.customer_id, s.Mandate.reference.label("mandate_reference"),
        s.Mandate.signature_date, s.Mandate.iban, s.Mandate.bic, s.Mandate.status.label("mandate_status"),
        s.Mandate.original_reference, s.Mandate.last_collection_date.label("collected_before"),
    ).where(s.Mandate.customer_id.in_(customer_ids)))
    if len(mandates):
        mandates["_active"] = mandates["mandate_status"] == "active"
        mandates = (mandates.sort_values(["customer_id", "_active", "signature_date", "id"])
                    .drop_duplicates("customer_id", keep="last").drop(columns=["_active", "id"]))
    else:
        mandates = pd.DataFrame(columns=["customer_id", "mandate_reference", "signature_date", "iban", "bic",
                                         "mandate_status", "original_reference", "collected_before"])
    frame = invoices.merge(mandates, on="customer_id", how="left")
    chains = {r: {r} | ({o} if isinstance(o, str) and o else set())
              for r, o in zip(frame["mandate_reference"], frame["original_reference"], strict=True)
              if isinstance(r, str)}
    references = sorted(set().union(*chains.values())) if chains else []
    history = read_frame(connection, select(
        s.SepaDebit.id, s.SepaDebit.mandate_reference, s.SepaDebit.invoice_id, s.SepaDebit.iban,
        s.SepaDebit.collection_date).where(s.SepaDebit.mandate_reference.in_(references))
        .order_by(s.SepaDebit.collection_date, s.SepaDebit.id)) if references else None
    # a forced debit replaces the earlier debit of its own invoice, so that one does not count
    selected = {int(i) for i in frame["invoice_id"]}
    if history is not None:
        history = history[~history["invoice_id"].astype("int64").isin(selected)]
    latest: dict[str, dict] = {}
    for reference, chain in chains.items():
        rows = [] if history is None else history[history["mandate_reference"].isin(chain)].to_dict("records")
        if rows:
            last = rows[-1]
            latest[reference] = {"last_collection_date": _day(last["collection_date"]),
                                 "previous_reference": last["mandate_reference"],
                                 "previous_iban": last["iban"] if isinstance(last["iban"], str) else ""}
    frame["already_collected"] = frame["mandate_reference"].map(lambda r: isinstance(r, str) and r in latest)
    for column in ("last_collection_date", "previous_reference", "previous_iban"):
        frame[column] = frame["mandate_reference"].map(
            lambda r, c=column: latest[r][c] if isinstance(r, str) and r in latest else None)
    # a collection by the system used before counts for the expiry and makes the next one RCUR
    frame["already_collected"] = frame["already_collected"] | frame["collected_before"].map(
        lambda d: _day(d) is not None)
    frame["last_collection_date"] = [max((d for d in (_day(here), _day(before)) if d is not None), default=None)
                                     for here, before in zip(frame["last_collection_date"], frame["collected_before"],
                                                             strict=True)]
    frame["mandate_reference"] = frame["mandate_reference"].map(lambda r: r if isinstance(r, str) else "")
    return frame.drop(columns=["original_reference", "collected_before"])


def _day(value):
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def _record(connection: Connection, made: DebitFile, path: str, now: datetime, replace: bool) -> int:
    file_id = connection.execute(insert(s.SepaFile).values(
        message_id=made.message_id, version=made.version, path=path, created_at=now,
        transactions=made.transactions, total_cents=made.total_cents, status="publishing", xml=made.xml,
    ).returning(s.SepaFile.id)).scalar_one()
    ids = [int(i) for i in made.debits["invoice_id"]]
    if replace:  # the earlier debits stay, as replaced by this file
        connection.execute(update(s.SepaDebit).where(s.SepaDebit.invoice_id.in_(ids),
                                                     s.SepaDebit.replaced_by_file_id.is_(None))
                           .values(replaced_by_file_id=file_id))
    connection.execute(insert(s.SepaDebit), [
        {"file_id": file_id, "invoice_id": int(d["invoice_id"]), "mandate_reference": d["mandate_reference"],
         "iban": d["iban"],
         "sequence_type": d["sequence_type"], "amount_cents": int(d["amount_cents"]),
         "collection_date": d["collection_date"]}
        for d in made.debits.to_dict("records")])
    return file_id


def _take_turn(engine: Engine) -> JobLock:
    """The ``sepa`` job lock, waiting up to :data:`LOCK_WAIT` for a live run to finish."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            return acquire(engine, "sepa")
        except UnavailableError as exc:
            if exc.code != LOCKED or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _publish(engine: Engine, storage: Storage, file_id: int, path: str, xml: bytes) -> None:
    """Store a recorded file (``.part``, then renamed) and mark it published."""
    storage.put(path, xml)
    _mark_published(engine, file_id)


def _mark_published(engine: Engine, file_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(update(s.SepaFile).where(s.SepaFile.id == file_id, s.SepaFile.status == "publishing")
                           .values(status="published"))


def _reconcile(engine: Engine, storage: Storage) -> tuple[list[str], list[str]]:
    """Finish what interrupted runs left (see the module docstring): returns what was done, one
    line per file, and the files under ``sepa/`` that nothing records."""
    with engine.connect() as connection:
        recorded = connection.execute(select(s.SepaFile.id, s.SepaFile.path, s.SepaFile.status, s.SepaFile.xml)
                                      .order_by(s.SepaFile.id)).all()
    done = []
    stored = storage.list("sepa")
    for path in stored:
        if path.endswith(".part"):
            storage.remove(path)
            done.append(f"{path}: an interrupted upload, removed")
    for row in recorded:
        if row.status != "publishing":
            continue
        try:
            there = storage.get(row.path) if row.path in stored else None
        except UnavailableError:
            there = None
        if there == row.xml:
            _mark_published(engine, row.id)
            done.append(f"{row.path}: stored by an interrupted run, now recorded as published")
        else:
            _publish(engine, storage, row.id, row.path, row.xml)
            done.append(f"{row.path}: recorded by an interrupted run but not stored, stored now from its record")
    paths = {row.path for row in recorded}
    unrecorded = [p for p in stored if not p.endswith(".part") and p not in paths]
    return done, unrecorded


def generate_direct_debits(engine: Engine, settings: Settings, now: datetime | None = None, period: str | None = None,
                           invoices: Iterable[str] | None = None, force: bool = False) -> DirectDebitRun:
    """Make the SEPA direct debit file of the invoices to debit (see the module docstring).

    ``now`` is naive UTC (default: the clock; the file's creation time; "today" for collection
    dates is its date in the operator's timezone); ``period`` (``YYYY-MM``) and ``invoices`` (invoice numbers) narrow
    the selection; a named invoice that cannot be debited is reported in ``rejected``. With
    ``force``, invoices already debited are debited again in a new file (needs ``period`` or
    ``invoices``). Nothing is written when nothing is to be debited; a rejected invoice is never
    sent. Raises :class:`~workbench.errors.ConfigError` for unusable settings,
    :class:`~workbench.errors.UnavailableError` when the file cannot be stored (it stays recorded,
    ``publishing``: the next run stores it) or another run holds the ``sepa`` lock longer than
    :data:`LOCK_WAIT`.
    """
    try:
        version = validate_version(settings.sepa_version)
    except InputError as exc:
        raise ConfigError(exc.message, source="setting sepa_version (WORKBENCH_SEPA_VERSION)") from None
    creditor = creditor_of(settings)
    now = now or utc_now()
    period = str(Period.parse(period)) if period is not None else None
    numbers = None if invoices is None else sorted({str(n).strip() for n in invoices if str(n).strip()})
    if force and period is None and not numbers:
        raise InputError("force debits invoices again: name a period or the invoices", code="force_without_selection")
    local_now = local_time(now, settings.timezone)
    today = local_now.date()
    storage = Storage(settings.storage_url)
    lock = _take_turn(engine)
    try:
        try:
            reconciled, unrecorded = _reconcile(engine, storage)
        except UnavailableError as exc:
            raise UnavailableError(f"the FTP space cannot be used to check and finish the SEPA files of earlier "
                                   f"runs ({exc}): no new file is made; run `workbench sepa` again once it is back "
                                   "(nothing is debited twice)", code=exc.code) from None
        with engine.begin() as connection:
            lock_table(connection, s.SepaDebit.__table__)  # writers of debits elsewhere (credit notes) wait
            candidates, named_rejects = _candidates(connection, period, numbers, force)
            made = None
            if len(candidates):
                frame = _with_mandates(connection, candidates)
                made = direct_debit_file(frame, creditor, today, version, new_message_id(local_now), local_now)
            rejected = pd.DataFrame(named_rejects, columns=REJECTED_COLUMNS)
            if made is not None and len(made.rejected):
                rejected = pd.concat([rejected, made.rejected[REJECTED_COLUMNS]], ignore_index=True)
            rejected = rejected.sort_values("invoice_number", ignore_index=True)
            if made is None or made.xml is None:
                note = f"; {len(rejected)} invoices rejected" if len(rejected) else ""
                done = f"; {len(reconciled)} files of interrupted runs finished" if reconciled else ""
                return DirectDebitRun(f"nothing to debit{note}{done}", version, rejected=rejected,
                                      debits=pd.DataFrame(columns=WRITTEN_COLUMNS), reconciled=reconciled,
                                      unrecorded=unrecorded)
            path = f"sepa/{local_now.year}/{local_now.month:02d}/{made.message_id}.xml"
            created = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
            file_id = _record(connection, made, path, created, force)
        try:
            _publish(engine, storage, file_id, path, made.xml)
        except UnavailableError as exc:
            raise UnavailableError(
                f"SEPA file {path} ({made.transactions} debits, total {format_money(made.total_cents)}) is recorded "
                f"but could not be stored ({exc}): run `workbench sepa` again once the FTP space is back; it stores "
                "this very file and debits nothing twice", code=exc.code) from None
    finally:
        lock.release()
    by_sequence = made.by_sequence()
    counts = ", ".join(f"{n} {seq}" for seq, (n, _) in by_sequence.items())
    message = (f"SEPA file {path}: {made.transactions} debits ({counts}), total {format_money(made.total_cents)}"
               + (f"; {len(rejected)} invoices rejected" if len(rejected) else "")
               + (f"; {len(reconciled)} files of interrupted runs finished" if reconciled else ""))
    return DirectDebitRun(message, version, path, storage.location(path), made.message_id, file_id,
                          made.transactions, made.total_cents, by_sequence,
                          made.debits[WRITTEN_COLUMNS].reset_index(drop=True), rejected, reconciled, unrecorded)

