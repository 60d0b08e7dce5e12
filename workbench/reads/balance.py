"""The period balance of a billing run: from the switch's records to the invoices, nothing leaked.

Revenue assurance reconciles each month from switch to invoice. A run's balance has five
sections, each a list of lines (calls, seconds, amount) that must add up to its first line; a
``difference`` line closes each section and must be zero:

1. **Records**: the CDR records of the files that brought calls of the period (as counted when
   each file was loaded) = rejected (by reason) + duplicates + calls of other periods + calls of
   the period;
2. **Calls of the period** = rated + not rated (by reason) + never rated;
3. **Rated calls of the period** (amounts in 1/10,000 EUR, exact) = billed earlier + billed in
   this run + billed later + pending (by why);
4. in money, the calls billed in this run = the consumption lines that bill them (rounded to the
   cent, once per line) + the rounding of those lines, which is at most half a cent per line;
5. in money too, the late calls this run bills (rated calls of earlier periods) = its late-call
   lines + their rounding (at most half a cent per line).

"Billed later" is on an invoice of a later period (late calls) or of a run made after this one
(run ids grow and are never reused: the period invoiced again after a credit note that reopened
it). The lines of an invoice cancelled by a reopening credit note bill nothing any more; its calls
are pending until invoiced again. A customer already invoiced for the period by another run's
issued invoice is "already invoiced", even with a draft in an unpromoted pre-production run
(production skips it); one both outside the run's selection and already invoiced is "not in this
run's selection" (the first reason that applies).

A balance that does not close is an anomaly (``balance_not_closed``) that blocks production until
explained (:func:`workbench.jobs.production.promote`'s ``balance_note``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from workbench.config import Settings
from workbench.db import calls as call_store
from workbench.db import ratings as rating_store
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.money import CENT_SCALE, PRICE_SCALE, to_decimal
from workbench.period import Period
from workbench.reads.calls import rated_ids
from workbench.reads.selection import invoiced_customers, reopened, selected_customers

#: the columns of a balance frame
BALANCE_COLUMNS = ["Section", "Line", "Calls", "Seconds", "Amount (EUR)"]
DIFFERENCE = "difference (must be 0)"


@dataclass(frozen=True)
class PeriodBalance:
    """A run's period balance: ``lines`` (:data:`BALANCE_COLUMNS`; ``Calls`` and ``Seconds`` int64,
    ``Amount (EUR)`` exact ``Decimal`` or ``None``) and the sections that do not close."""

    run_id: int
    period: str
    lines: pd.DataFrame
    open_sections: tuple[str, ...]

    @property
    def closed(self) -> bool:
        return not self.open_sections


class _Lines:
    def __init__(self):
        self.rows: list[tuple] = []
        self.open: list[str] = []

    def add(self, section: str, line: str, calls: int, seconds: int | None = None, units: int | None = None,
            cents: int | None = None) -> None:
        amount = to_decimal(int(units), PRICE_SCALE) if units is not None else (
            to_decimal(int(cents), CENT_SCALE) if cents is not None else None)
        self.rows.append((section, line, int(calls), None if seconds is None else int(seconds), amount))

    def close(self, section: str, total: tuple[int, ...], parts: list[tuple[int, ...]]) -> None:
        """Add the ``difference`` line: ``total`` minus the sum of ``parts`` (calls, seconds[, units])."""
        left = [t - sum(p[i] for p in parts) for i, t in enumerate(total)]
        self.add(section, DIFFERENCE, *left)
        if any(left):
            self.open.append(section)


def _int(value) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def balance_of(connection: Connection, run: dict, selection: str, settings: Settings) -> PeriodBalance:
    """The period balance of a stored run (its ``billing_runs`` row; ``selection`` its customers)
    (see the module docstring)."""
    period = Period.parse(run["period"])
    lines = _Lines()
    _records(connection, period, settings.timezone, lines)
    rated_count = _calls(connection, period, settings.timezone, lines)
    _rated(connection, run, selection, period, rated_count, lines)
    frame = pd.DataFrame(lines.rows, columns=BALANCE_COLUMNS)
    frame["Calls"] = frame["Calls"].astype(np.int64)
    frame["Seconds"] = pd.array(frame["Seconds"], dtype="Int64")
    frame["Amount (EUR)"] = frame["Amount (EUR)"].astype(object)
    return PeriodBalance(int(run["id"]), str(period), frame, tuple(lines.open))


def _records(connection: Connection, period: Period, timezone: str, lines: _Lines) -> None:
    section = "1. CDR records"
    lo, hi = period.utc_bounds(timezone)
    # the files holding calls of the period, or rejected records of it (a file loaded twice
    # under another name brings duplicates only)
    files = sorted(set(call_store.files_with_calls(connection, lo, hi)) | set(connection.execute(
        select(s.CdrReject.file_id).where(s.CdrReject.start_utc >= lo, s.CdrReject.start_utc < hi).distinct()
    ).scalars()))
    received = connection.execute(select(func.count(), func.coalesce(func.sum(s.CdrFile.records), 0))
                                  .where(s.CdrFile.id.in_(files))).one()
    files_text = f"{received[0]} file" + ("" if received[0] == 1 else "s")
    lines.add(section, f"records received in the files with records of {period} ({files_text})",
              received[1])
    rejects = read_frame(connection, select(s.CdrReject.reason, s.CdrReject.status, func.count().label("records"))
                         .where(s.CdrReject.file_id.in_(files)).group_by(s.CdrReject.reason, s.CdrReject.status))
    # a reject cured into a call is counted as that call; one cured into a call already stored
    # is a duplicate; a pending one waits for a reference fix
    rejects = rejects[rejects["status"] != "accepted"]
    label = [("duplicates (already loaded)" if reason == "duplicate" or status == "duplicate" else
              f"rejected: {reason}" + (" (pending a reference fix)" if status == "pending" else ""))
             for reason, status in zip(rejects["reason"], rejects["status"], strict=True)]
    counts = rejects.assign(label=label).groupby("label")["records"].sum()
    parts = []
    for line in sorted(counts.index, key=lambda x: (not x.startswith("rejected"), x)):
        lines.add(section, line, _int(counts[line]))
        parts.append((_int(counts[line]),))
    all_calls = call_store.count_of_files(connection, files)
    own = len(call_store.read(connection, lo, hi, ["id"], files=files))
    counts = {False: all_calls - own, True: own}
    lines.add(section, "accepted: calls of other periods", counts.get(False, 0))
    lines.add(section, f"accepted: calls of {period}", counts.get(True, 0))
    parts += [(counts.get(False, 0),), (counts.get(True, 0),)]
    lines.close(section, (_int(received[1]),), parts)


def _calls(connection: Connection, period: Period, timezone: str, lines: _Lines) -> int:
    section = "2. Calls of the period"
    lo, hi = period.utc_bounds(timezone)
    calls = call_store.read(connection, lo, hi, ["id", "duration_s"])
    ids = calls["id"].to_numpy()
    calls["rated"] = np.isin(ids, rated_ids(connection, ids))
    errors = read_frame(connection, select(s.RatingError.cdr_id, s.RatingError.reason).where(
        s.RatingError.cdr_id.between(int(ids.min()), int(ids.max())))) if len(ids) else None
    reasons = (errors.assign(cdr_id=errors["cdr_id"].astype(np.int64)).set_index("cdr_id")["reason"]
               if errors is not None and len(errors) else pd.Series(dtype=object))
    calls["reason"] = calls["id"].map(reasons).astype(object)
    seconds = calls["duration_s"].astype(np.int64)
    total = (len(calls), int(seconds.sum()))
    lines.add(section, f"calls of {period}", *total)
    rated = calls["rated"]
    parts = [(int(rated.sum()), int(seconds[rated].sum()))]
    lines.add(section, "rated", *parts[0])
    failed = calls[calls["reason"].notna()]
    for reason, group in failed.groupby("reason"):
        part = (len(group), int(group["duration_s"].astype(np.int64).sum()))
        lines.add(section, f"not rated: {reason}", *part)
        parts.append(part)
    never = ~rated & calls["reason"].isna()
    part = (int(never.sum()), int(seconds[never].sum()))
    lines.add(section, "never rated (loaded after the last rating of the period)", *part)
    parts.append(part)
    lines.close(section, total, parts)
    return parts[0][0]


def _rated(connection: Connection, run: dict, selection: str, period: Period, rated_count: int,
           lines: _Lines) -> None:
    section = "3. Rated calls of the period"
    production_id = connection.execute(select(s.BillingRun.id).where(
        s.BillingRun.source_run_id == run["id"])).scalar() if run["kind"] == "preprod" else run["id"]
    rated = rating_store.of_period(connection, str(period), ["customer_id", "duration_s", "price_units", "invoice_id"])
    invoices = read_frame(connection, select(s.Invoice.id.label("invoice_id"), s.Invoice.run_id,
                                             s.Invoice.period.label("invoice_period")).where(s.Invoice.id.in_(
        select(s.RatedCall.invoice_id).where(s.RatedCall.period == str(period)).distinct())))
    rated = rated.merge(invoices.astype({"invoice_id": "Int64"}), on="invoice_id", how="left")
    total = (len(rated), int(rated["duration_s"].sum()), int(rated["price_units"].sum()))
    lines.add(section, f"rated calls of {period}", total[0], total[1], total[2])

    billed_run = production_id or run["id"]
    selected = set(selected_customers(connection, selection)["customer_id"].astype(int))
    # the customers this run invoiced: its issued invoices that no reopening credit note cancels
    # (an unpromoted pre-production run has drafts only: a customer invoiced for the period by
    # another run is invoiced elsewhere, and production will skip it, even with a draft here)
    own = set(connection.execute(select(s.Invoice.customer_id).where(
        s.Invoice.run_id == billed_run, s.Invoice.status == "issued", s.Invoice.kind == "invoice",
        ~reopened())).scalars())
    invoiced_elsewhere = invoiced_customers(connection, str(period)) - own
    # the customers whose invoice of this run a credit note cancelled, reopening the period
    reopened_customers = set(connection.execute(select(s.Invoice.customer_id).where(
        s.Invoice.run_id == billed_run, s.Invoice.kind == "invoice", reopened())).scalars())
    # what the run's invoices bill of the period: its consumption lines of the period, by customer
    # (the lines of an invoice cancelled by a reopening credit note bill nothing any more)
    billed_lines = read_frame(connection, select(
        s.Invoice.customer_id, func.count().label("lines"), func.sum(s.InvoiceItem.calls).label("calls"),
        func.sum(s.InvoiceItem.seconds).label("seconds"), func.sum(s.InvoiceItem.amount_cents).label("cents"),
    ).join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).where(
        s.Invoice.run_id == billed_run, s.InvoiceItem.type == "consumption",
        s.InvoiceItem.period_from == period.start, ~reopened()).group_by(s.Invoice.customer_id))
    billed_lines = billed_lines[~billed_lines["customer_id"].astype(int).isin(invoiced_elsewhere)]
    on_invoice = set(billed_lines["customer_id"].astype(int))
    draft_customers = set(connection.execute(select(s.Invoice.customer_id).where(
        s.Invoice.run_id == billed_run)).scalars())

    billed = rated["invoice_id"].notna()
    run_ids = pd.to_numeric(rated["run_id"], errors="coerce")
    if production_id:
        this_run = billed & (run_ids == production_id)
    else:
        this_run = ~billed & rated["customer_id"].isin(on_invoice) & ~rated["customer_id"].isin(invoiced_elsewhere)
    # billed later: on an invoice of a later period (late calls), or of a run made after this one
    # (run ids are never reused and grow: the period invoiced again after a reopening credit note)
    late = billed & ~this_run & (rated["invoice_period"].astype(object) > str(period))
    rebilled = billed & ~this_run & ~late & (run_ids > billed_run)
    earlier = billed & ~this_run & ~late & ~rebilled
    pending = ~billed & ~this_run
    # a customer both outside the selection and invoiced elsewhere is "not in this run's selection"
    why = np.select(
        [~rated["customer_id"].isin(selected), rated["customer_id"].isin(invoiced_elsewhere),
         rated["customer_id"].isin(reopened_customers), rated["customer_id"].isin(draft_customers)],
        ["pending: customer not in this run's selection",
         "pending: customer already invoiced for the period (billed as late calls on its next invoice)",
         "pending: its invoice was cancelled by a credit note that reopened the period",
         "pending: rated after this run (billed as late calls on the customer's next invoice)"],
        "pending: the customer has no invoice in this run")

    def part(mask) -> tuple[int, int, int]:
        return int(mask.sum()), int(rated.loc[mask, "duration_s"].sum()), int(rated.loc[mask, "price_units"].sum())

    parts = []
    for label, mask in (("billed earlier", earlier), (f"billed in this run (run {billed_run})", this_run),
                        ("billed later, as late calls", late),
                        ("billed later, by a later run of the period (after a reopening credit note)", rebilled)):
        parts.append(part(mask))
        lines.add(section, label, *parts[-1])
    for label in sorted(set(why[pending.to_numpy()])):
        mask = pending & (why == label)
        parts.append(part(mask))
        lines.add(section, label, *parts[-1])
    lines.close(section, total, parts)
    if total[0] != rated_count:
        lines.add(section, "difference with the rated calls of section 2 (must be 0)", rated_count - total[0])
        lines.open.append(section)

    # in money: the calls billed in this run = the lines that bill them + the rounding of those lines
    money = "4. Calls billed in this run, in money"
    billed_calls = part(this_run)
    _in_money(lines, money, ("rated calls billed in this run", billed_calls),
              (f"consumption lines of {period} on the run's invoices", billed_lines))
    _late(connection, period, billed_run, bool(production_id), invoiced_elsewhere, lines)


def _late(connection: Connection, period: Period, billed_run: int, promoted: bool, invoiced_elsewhere: set[int],
          lines: _Lines) -> None:
    """Section 5: the calls of earlier periods this run bills as late calls = its late-call lines
    + their rounding to the cent (at most half a cent per line)."""
    section = "5. Late calls (of earlier periods) billed in this run, in money"
    late_lines = read_frame(connection, select(
        s.Invoice.customer_id, func.count().label("lines"), func.sum(s.InvoiceItem.calls).label("calls"),
        func.sum(s.InvoiceItem.seconds).label("seconds"), func.sum(s.InvoiceItem.amount_cents).label("cents"),
    ).join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).where(
        s.Invoice.run_id == billed_run, s.InvoiceItem.type == "consumption",
        s.InvoiceItem.period_from < period.start, ~reopened()).group_by(s.Invoice.customer_id))
    late_lines = late_lines[~late_lines["customer_id"].astype(int).isin(invoiced_elsewhere)]
    if promoted:  # the calls its issued invoices bill
        calls = select(func.count(), func.coalesce(func.sum(s.RatedCall.duration_s), 0),
                       func.coalesce(func.sum(s.RatedCall.price_units), 0)).where(s.RatedCall.period < str(period))
        calls = calls.join(s.Invoice, s.Invoice.id == s.RatedCall.invoice_id).where(
            s.Invoice.run_id == billed_run, ~reopened())
        rated = tuple(int(v) for v in connection.execute(calls).one())
    else:  # the calls its drafts would bill: not billed yet, of the customers with late lines
        late = rating_store.unbilled(connection, before=str(period), customers=late_lines["customer_id"].astype(int))
        rated = (len(late), int(late["duration_s"].sum()), int(late["price_units"].sum()))
    _in_money(lines, section, ("rated calls of earlier periods billed in this run", rated),
              ("late-call lines on the run's invoices", late_lines))


def _in_money(lines: _Lines, section: str, rated: tuple[str, tuple[int, int, int]],
              billed: tuple[str, pd.DataFrame]) -> None:
    """A money section: the rated calls (label, (calls, seconds, units)) = the invoice lines that
    bill them (label, frame of lines, calls, seconds, cents by customer) + the rounding of those
    lines to the cent; open when calls or seconds differ, or the rounding is over half a cent (50
    units) per line (each line is rounded once, half up)."""
    (rated_label, calls), (lines_label, frame) = rated, billed
    invoiced = (_int(frame["calls"].sum()), _int(frame["seconds"].sum()), _int(frame["cents"].sum()))
    count_lines = _int(frame["lines"].sum())
    lines.add(section, rated_label, *calls)
    lines.add(section, f"{lines_label} ({count_lines} lines)", invoiced[0], invoiced[1], cents=invoiced[2])
    rounding = calls[2] - invoiced[2] * 100
    lines.add(section, "rounding of those lines to the cent", 0, 0, rounding)
    calls_left, seconds_left = calls[0] - invoiced[0], calls[1] - invoiced[1]
    lines.add(section, DIFFERENCE, calls_left, seconds_left, 0)
    if calls_left or seconds_left or abs(rounding) > 50 * count_lines:
        lines.open.append(section)


def balance_anomalies(balance: PeriodBalance) -> list[str]:
    """The sections of a balance that do not close, each with its difference, for people."""
    frame = balance.lines
    out = []
    for section in balance.open_sections:
        rows = frame[(frame["Section"] == section) & frame["Line"].str.startswith("difference")]
        detail = "; ".join(f"{r['Calls']} calls" + (f", {r['Seconds']} s" if not pd.isna(r["Seconds"]) else "")
                           + (f", {r['Amount (EUR)']} EUR" if r["Amount (EUR)"] not in (None, Decimal(0)) else "")
                           for _, r in rows.iterrows())
        text = f"{section} does not close: {detail or 'the rounding of the lines is over half a cent each'}"
        if section.startswith("4.") and detail:
            text += (" (the run's invoices do not bill the calls rated now for its customers: calls rated after "
                     "the run; run a new pre-production billing)")
        out.append(text)
    return out
